-- 0002: device catalog versions, efficiency (calibration) versions, observed
-- runs, and the duration estimator's learned state.

-- Every catalog version ever imported stays readable: past charges refer to
-- it by version. The newest imported version is the current one.
CREATE TABLE catalog_versions (
    version      text PRIMARY KEY CHECK (length(version) BETWEEN 1 AND 64),
    seq          bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    sha256       text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    document     jsonb NOT NULL,
    device_count integer NOT NULL CHECK (device_count > 0),
    imported_at  timestamptz NOT NULL DEFAULT now(),
    imported_by  text NOT NULL
);

CREATE TABLE devices (
    catalog_version text NOT NULL REFERENCES catalog_versions (version),
    id              text NOT NULL,
    position        integer NOT NULL,
    kind            text NOT NULL,
    spec            jsonb NOT NULL,
    PRIMARY KEY (catalog_version, id)
);

-- Efficiency factors per (device or device kind, workload class). Version 1
-- holds the documented defaults; each calibration appends the next version
-- with the observations it used. Never updated in place.
CREATE TABLE efficiency_versions (
    version      integer PRIMARY KEY CHECK (version >= 1),
    factors      jsonb NOT NULL,
    observations integer NOT NULL DEFAULT 0,
    reason       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text NOT NULL
);

-- Completed runs reported by providers or the service: the duration learns
-- from each; runs with measured work also feed efficiency calibration.
CREATE TABLE metering_observations (
    id              text PRIMARY KEY CHECK (id ~ '^obs_[0-7][0-9A-HJKMNP-TV-Z]{25}$'),
    reported_by     text NOT NULL,
    record_id       text NOT NULL CHECK (length(record_id) BETWEEN 1 AND 128),
    tenant_id       text NOT NULL,
    job_class       text NOT NULL,
    device_id       text NOT NULL,
    catalog_version text NOT NULL REFERENCES catalog_versions (version),
    profile         jsonb NOT NULL,
    device_count    bigint NOT NULL CHECK (device_count > 0),
    wall_ms         bigint NOT NULL CHECK (wall_ms > 0),
    work_mcu        bigint CHECK (work_mcu > 0),
    predicted_p50_s bigint NOT NULL,
    calibrated_in   integer REFERENCES efficiency_versions (version),
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (reported_by, record_id)
);
CREATE INDEX metering_observations_uncalibrated ON metering_observations (created_at)
    WHERE calibrated_in IS NULL AND work_mcu IS NOT NULL;

-- Learned estimator state: one row per history key (64-bit key stored as its
-- two's-complement bigint) and one global row.
CREATE TABLE estimate_entries (
    key        bigint PRIMARY KEY,
    entry      jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE estimate_global (
    id         smallint PRIMARY KEY CHECK (id = 1),
    state      jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER catalog_versions_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON catalog_versions
    FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER devices_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON devices
    FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER efficiency_versions_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON efficiency_versions
    FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();

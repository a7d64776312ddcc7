# Tally: the two commands that matter are `make run` and `make test`.
# Both install missing Debian packages, build, and start a private PostgreSQL
# cluster under .tally/ (Unix socket only; as root it runs as user postgres).

.PHONY: run test stop build bench fuzz format lint clean

run:
	@bash scripts/run.sh

test:
	@bash scripts/test.sh

stop:
	@bash scripts/pg.sh stop .tally/pg && echo "tally: local database stopped"

build:
	@bash scripts/deps.sh
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build build -j$$(nproc)

bench:
	@bash bench/http.sh

fuzz:
	@bash tests/fuzz/run.sh

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

lint:
	@bash scripts/lint.sh

clean:
	rm -rf build build-asan build-fuzz

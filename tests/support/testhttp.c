/*
 * testhttp.c - tallyd process control and a libcurl client for e2e tests.
 */
#include "testhttp.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <ctype.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *tallyd_path(void)
{
    const char *p = getenv("TALLY_TEST_TALLYD");
    return p && *p ? p : TALLY_BINARY_DIR "/bin/tallyd";
}

int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t l = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    getsockname(fd, (struct sockaddr *)&a, &l);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static void set_env(const tallyd_proc *p)
{
    char path[512];

    setenv("TALLY_DATABASE_URL", p->conninfo, 1);
    snprintf(path, sizeof path, "%s/signing.key", p->dir);
    setenv("TALLY_SIGNING_KEY", path, 1);
    snprintf(path, sizeof path, "%s/hash.secret", p->dir);
    setenv("TALLY_KEY_HASH_SECRET", path, 1);
}

int tallyd_cli(const tallyd_proc *p, char **out, const char *const *args)
{
    int fds[2], status = 0;
    pid_t pid;
    char *buf = NULL;
    size_t len = 0;

    cr_assert(pipe(fds) == 0);
    pid = fork();
    if (pid < 0)
        cr_assert_fail("fork failed");
    if (pid == 0) {
        const char *argv[32];
        int n = 0;
        argv[n++] = tallyd_path();
        for (; args[n - 1] && n < 31; n++)
            argv[n] = args[n - 1];
        argv[n] = NULL;
        dup2(fds[1], 1);
        close(fds[0]);
        set_env(p);
        execv(argv[0], (char **)argv);
        _exit(127);
    }
    close(fds[1]);
    {
        FILE *f = open_memstream(&buf, &len);
        char chunk[4096];
        ssize_t n;
        while ((n = read(fds[0], chunk, sizeof chunk)) > 0)
            fwrite(chunk, 1, (size_t)n, f);
        fclose(f);
    }
    close(fds[0]);
    waitpid(pid, &status, 0);
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

char *tallyd_log(const tallyd_proc *p)
{
    char path[512], *buf = NULL;
    size_t len = 0;
    FILE *in, *out;
    int ch;

    snprintf(path, sizeof path, "%s/tallyd.log", p->dir);
    in = fopen(path, "r");
    out = open_memstream(&buf, &len);
    while (in && (ch = fgetc(in)) != EOF)
        fputc(ch, out);
    if (in)
        fclose(in);
    fclose(out);
    return buf;
}

static void make_admin(tallyd_proc *p)
{
    const char *args[] = {"admin",  "create-account", "--name", "e2e-admin",
                          "--role", "admin",          NULL};
    char *out = NULL;
    json_t *j;

    cr_assert_eq(tallyd_cli(p, &out, args), 0, "admin create-account failed");
    j = json_loads(out, 0, NULL);
    cr_assert(j, "admin output is not JSON: %s", out);
    snprintf(p->admin_key, sizeof p->admin_key, "%s",
             json_string_value(json_object_get(j, "api_key")));
    snprintf(p->admin_id, sizeof p->admin_id, "%s", json_string_value(json_object_get(j, "id")));
    json_decref(j);
    free(out);
}

void tallyd_start(tallyd_proc *p, const char *conninfo, const char *const *extra_env)
{
    char tmpl[] = "/tmp/tally-e2e-XXXXXX", path[512], listen[64];
    const char *keygen[] = {"keygen", "--out", path, NULL};
    const char *migrate[] = {"migrate", NULL};

    memset(p, 0, sizeof *p);
    cr_assert(mkdtemp(tmpl));
    snprintf(p->dir, sizeof p->dir, "%s", tmpl);
    snprintf(p->conninfo, sizeof p->conninfo, "%s", conninfo);
    snprintf(path, sizeof path, "%s/signing.key", p->dir);
    cr_assert_eq(tallyd_cli(p, NULL, keygen), 0, "keygen failed");
    {
        const char *hs[] = {"keygen", "--hash-secret", "--out", NULL, NULL};
        char hpath[512];
        snprintf(hpath, sizeof hpath, "%s/hash.secret", p->dir);
        hs[3] = hpath;
        cr_assert_eq(tallyd_cli(p, NULL, hs), 0, "keygen --hash-secret failed");
    }
    cr_assert_eq(tallyd_cli(p, NULL, migrate), 0, "migrate failed");
    {
        const char *imp[] = {"catalog", "import", NULL};
        cr_assert_eq(tallyd_cli(p, NULL, imp), 0, "catalog import failed");
    }
    make_admin(p);
    p->port = free_port();
    snprintf(p->base, sizeof p->base, "http://127.0.0.1:%d", p->port);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", p->port);
    p->pid = fork();
    if (p->pid < 0)
        cr_assert_fail("fork failed");
    if (p->pid == 0) {
        int fd;
        snprintf(path, sizeof path, "%s/tallyd.log", p->dir);
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 2);
        set_env(p);
        setenv("TALLY_LISTEN", listen, 1);
        setenv("TALLY_THREADS", "2", 1);
        for (const char *const *e = extra_env; e && *e; e++)
            putenv((char *)*e);
        execl(tallyd_path(), tallyd_path(), "serve", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        http_resp r = http_request(p, "GET", "/healthz", NULL, NULL, NULL, 0);
        long st = r.status;
        http_resp_free(&r);
        if (st == 200)
            return;
        if (waitpid(p->pid, NULL, WNOHANG) == p->pid) {
            char *log = tallyd_log(p);
            cr_assert_fail("tallyd exited during start-up:\n%s", log);
        }
        usleep(50000);
    }
    cr_assert_fail("tallyd did not answer /healthz within 10 s");
}

void tallyd_stop(tallyd_proc *p)
{
    char cmd[600];
    int status;

    if (p->pid > 0) {
        kill(p->pid, SIGTERM);
        for (int i = 0; i < 200 && waitpid(p->pid, &status, WNOHANG) == 0; i++)
            usleep(50000);
        if (waitpid(p->pid, &status, WNOHANG) == 0) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &status, 0);
        }
        p->pid = 0;
        /* A sanitizer report from the server fails the test that ran it. */
        {
            char *log = tallyd_log(p);
            int clean = !strstr(log, "ERROR: AddressSanitizer") &&
                        !strstr(log, "ERROR: LeakSanitizer") && !strstr(log, "runtime error:");
            if (!clean)
                fprintf(stderr, "---- tallyd log ----\n%s\n----\n", log);
            free(log);
            cr_assert(clean, "tallyd reported a sanitizer error (log above)");
            cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "tallyd did not exit cleanly on SIGTERM (status %d)", status);
        }
    }
    if (p->dir[0] && !getenv("TALLY_TEST_KEEP")) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", p->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", p->dir);
    }
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    fwrite(data, size, n, arg);
    return size * n;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    for (size_t i = 0; i < size * n && data[i] != ':'; i++)
        data[i] = (char)tolower((unsigned char)data[i]);
    fwrite(data, size, n, arg);
    return size * n;
}

http_resp http_request(const tallyd_proc *p, const char *method, const char *path, const char *key,
                       const char *const *headers, const char *body, size_t body_len)
{
    http_resp r = {0};
    CURL *curl = curl_easy_init();
    struct curl_slist *hl = NULL;
    char url[4096], auth[256];
    size_t hlen = 0;
    FILE *bf = open_memstream(&r.body, &r.len);
    FILE *hf = open_memstream(&r.headers, &hlen);
    int has_ct = 0;

    snprintf(url, sizeof url, "%s%s", p->base, path);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    if (!strcmp(method, "HEAD"))
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, bf);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, hf);
    if (key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        hl = curl_slist_append(hl, auth);
    }
    for (const char *const *h = headers; h && *h; h++) {
        if (!strncasecmp(*h, "Content-Type:", 13))
            has_ct = 1;
        hl = curl_slist_append(hl, *h);
    }
    if (body) {
        if (!has_ct)
            hl = curl_slist_append(hl, "Content-Type: application/json");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)body_len);
    }
    hl = curl_slist_append(hl, "Expect:");
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hl);
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
    fclose(bf);
    fclose(hf);
    curl_slist_free_all(hl);
    curl_easy_cleanup(curl);
    if (r.len)
        r.json = json_loadb(r.body, r.len, 0, NULL);
    return r;
}

const char *http_header_value(const http_resp *r, const char *name)
{
    static char val[1024];
    char needle[128];
    const char *h;

    snprintf(needle, sizeof needle, "\n%s:", name);
    for (char *q = needle; *q; q++)
        *q = (char)tolower((unsigned char)*q);
    h = r->headers ? strstr(r->headers, needle) : NULL;
    if (!h)
        return NULL;
    h += strlen(needle);
    while (*h == ' ')
        h++;
    snprintf(val, sizeof val, "%.*s", (int)strcspn(h, "\r\n"), h);
    return val;
}

void http_resp_free(http_resp *r)
{
    free(r->body);
    free(r->headers);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

json_t *tallyd_account(const tallyd_proc *p, const char *name, const char *role)
{
    char body[256];
    http_resp r;
    json_t *out;

    snprintf(body, sizeof body, "{\"name\":\"%s\",\"role\":\"%s\"}", name, role);
    r = http_request(p, "POST", "/v1/accounts", p->admin_key, NULL, body, strlen(body));
    cr_assert_eq(r.status, 201, "%s", r.body);
    out = json_incref(r.json);
    http_resp_free(&r);
    return out;
}

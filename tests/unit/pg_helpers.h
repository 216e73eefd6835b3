/* pg_helpers.h - what unit tests that need a real PostgreSQL share: a database of their
 * own on the server PARLEY_TEST_PG_URI names (tests/run.sh starts one with
 * scripts/pg-cluster.sh), SQL behind the code's back, and a private cluster for tests
 * that stop and restart the server. Header-only (static functions): each test program
 * includes it once. */
#ifndef PARLEY_TEST_PG_HELPERS_H
#define PARLEY_TEST_PG_HELPERS_H

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* base URI with its database name replaced: "postgresql://u@h:p/old?x" -> ".../db?x". */
static inline int pgt_uri_with_db(const char *base, const char *db, char *out, size_t len)
{
    const char *auth = strstr(base, "://");
    if (!auth)
        return -1;
    const char *path = strchr(auth + 3, '/');
    const char *query = strchr(auth + 3, '?');
    if (query && path && path > query)
        path = NULL;
    size_t head = path ? (size_t)(path - base) : query ? (size_t)(query - base) : strlen(base);
    int n = snprintf(out, len, "%.*s/%s%s", (int)head, base, db, query ? query : "");
    return n > 0 && (size_t)n < len ? 0 : -1;
}

static inline void pgt_ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static inline PGconn *pgt_connect(const char *uri)
{
    PGconn *c = PQconnectdb(uri);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "connect %s: %s", uri, PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, pgt_ignore_notice, NULL); /* "drop cascades to ..." */
    return c;
}

/* Run sql (several statements allowed); 0 or -1 after printing why. */
static inline int pgt_exec(const char *uri, const char *sql)
{
    PGconn *c = pgt_connect(uri);
    if (!c)
        return -1;
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
    return ok ? 0 : -1;
}

/* The first column of the first row as text into out; 0 or -1 (no row, error). */
static inline int pgt_value(const char *uri, const char *sql, char *out, size_t len)
{
    PGconn *c = pgt_connect(uri);
    if (!c)
        return -1;
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0;
    if (ok)
        snprintf(out, len, "%s", PQgetvalue(r, 0, 0));
    else
        fprintf(stderr, "%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
    return ok ? 0 : -1;
}

/* Create database name on PARLEY_TEST_PG_URI (dropped first if left over), with a
 * language-aware collation where the server has ICU so that byte-order checks prove the
 * code asks for byte order; its URI in uri. */
static inline int pgt_create_db(const char *name, char *uri, size_t len)
{
    const char *base = getenv("PARLEY_TEST_PG_URI");
    char sql[256];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    if (!base || pgt_exec(base, sql) < 0)
        return -1;
    snprintf(sql, sizeof sql,
             "CREATE DATABASE %s LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'"
             " TEMPLATE template0",
             name);
    if (pgt_exec(base, sql) < 0) {
        fprintf(stderr, "(no ICU collation: testing with the server's default)\n");
        snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
        if (pgt_exec(base, sql) < 0)
            return -1;
    }
    return pgt_uri_with_db(base, name, uri, len);
}

static inline int pgt_drop_db(const char *name)
{
    char sql[160];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    return pgt_exec(getenv("PARLEY_TEST_PG_URI"), sql);
}

/* ---- one database for a whole test program (cmocka group setup and teardown) ---- */

static char pgt_group_name[64], pgt_group_uri[600]; /* uri "" when there is no server */

/* Make database PREFIX_PID when PARLEY_TEST_PG_URI names a server; 0, or -1. */
static inline int pgt_group_setup(const char *prefix)
{
    const char *base = getenv("PARLEY_TEST_PG_URI");
    if (!base || !*base)
        return 0; /* the PostgreSQL cases skip themselves */
    snprintf(pgt_group_name, sizeof pgt_group_name, "%s_%ld", prefix, (long)getpid());
    return pgt_create_db(pgt_group_name, pgt_group_uri, sizeof pgt_group_uri) < 0 ? -1 : 0;
}

static inline int pgt_group_teardown(void)
{
    return !pgt_group_uri[0] || pgt_drop_db(pgt_group_name) == 0 ? 0 : -1;
}

/* ---- a private cluster (scripts/pg-cluster.sh), for tests that stop the server ---- */

typedef struct pgt_cluster {
    char script[512];
    char dir[64];
    char uri[256];
} pgt_cluster;

static inline int pgt_cluster_cmd(pgt_cluster *c, const char *cmd)
{
    char line[700];
    snprintf(line, sizeof line, "sh '%s' %s '%s' >&2", c->script, cmd, c->dir);
    return system(line);
}

/* Start one on a free port; 0, or -1 (then nothing is left behind). this_file: __FILE__
 * of the test, from which scripts/ is found unless PARLEY_PG_CLUSTER says. */
static inline int pgt_cluster_start(pgt_cluster *c, const char *this_file)
{
    memset(c, 0, sizeof *c);
    const char *env = getenv("PARLEY_PG_CLUSTER");
    if (env && *env) {
        snprintf(c->script, sizeof c->script, "%s", env);
    } else {
        const char *tail = strstr(this_file, "tests/unit/");
        snprintf(c->script, sizeof c->script, "%.*sscripts/pg-cluster.sh",
                 tail ? (int)(tail - this_file) : 0, this_file);
    }
    snprintf(c->dir, sizeof c->dir, "/tmp/parley-pgc-XXXXXX");
    if (!mkdtemp(c->dir))
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "sh '%s' start '%s' %d", c->script, c->dir, port);
    FILE *p = port > 0 ? popen(cmd, "r") : NULL;
    char *got = p ? fgets(c->uri, sizeof c->uri, p) : NULL;
    int rc = p ? pclose(p) : -1;
    if (!got || rc != 0) {
        pgt_cluster_cmd(c, "stop");
        return -1;
    }
    c->uri[strcspn(c->uri, "\n")] = '\0';
    return 0;
}

#endif

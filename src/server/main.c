/* main.c - parleyd: read the configuration, start the server, run until told to stop. */
#include "../common/log.h"
#include "../common/version.h"
#include "config.h"
#include "server.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: parleyd -c FILE [-t] [-d]\n"
                 "  -c FILE   configuration file (see docs/configuration.md)\n"
                 "  -t        check the configuration and TLS material, then exit\n"
                 "  -d        log at debug level\n"
                 "  -V        print the version\n");
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int check_only = 0, debug = 0, opt;
    while ((opt = getopt(argc, argv, "c:tdVh")) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 't': check_only = 1; break;
        case 'd': debug = 1; break;
        case 'V': printf("parleyd %s\n", PARLEY_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (!path) {
        usage(stderr);
        return 1;
    }
    config cfg;
    config_init(&cfg);
    char err[1024];
    if (config_load(&cfg, path, err, sizeof err) < 0) {
        fprintf(stderr, "parleyd: %s\n", err);
        config_free(&cfg);
        return 1;
    }
    if (debug)
        cfg.log_level = PLOG_DEBUG;
    if (cfg.log_file && log_open_file(cfg.log_file) < 0) {
        fprintf(stderr, "parleyd: cannot open log file %s\n", cfg.log_file);
        config_free(&cfg);
        return 1;
    }
    server srv;
    int rc = 0;
    if (server_init(&srv, &cfg) < 0) {
        rc = 1;
    } else if (check_only) {
        log_info("configuration %s is valid", path);
    } else {
        server_run(&srv);
    }
    server_shutdown(&srv);
    config_free(&cfg);
    log_info("parleyd stopped");
    return rc;
}

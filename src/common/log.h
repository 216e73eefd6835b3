/* log.h - one line per event, with a level, to stderr (or a file).
 *
 * Callers must never pass secrets (passwords, SCRAM keys, session tokens) and must not
 * log message bodies at INFO or above: the log is read by operators, the compliance
 * archive is where content belongs. */
#ifndef PARLEY_LOG_H
#define PARLEY_LOG_H

typedef enum { PLOG_DEBUG = 0, PLOG_INFO, PLOG_WARN, PLOG_ERROR } log_level;

void log_set_level(log_level level);
log_level log_get_level(void);
/* Parse "debug", "info", "warn" or "error"; returns 0 on success, -1 otherwise. */
int log_level_parse(const char *name, log_level *out);
/* Redirect output to a file opened for appending; returns 0 or -1 (errno set). */
int log_open_file(const char *path);

void log_msg(log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(PLOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(PLOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(PLOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(PLOG_ERROR, __VA_ARGS__)

#endif

/*
 * fileio.h - reading whole files with a size limit.
 */
#ifndef CE_FILEIO_H
#define CE_FILEIO_H

#include <stdbool.h>
#include <stddef.h>

/* Reads path into a malloc'd buffer (NUL-terminated, caller frees) of at
 * most max bytes. Reads to end of file instead of trusting the size stat
 * reports, since the file may be rewritten while it is read. False with a
 * message in err on any failure (missing, not a regular file, too big). */
bool file_read_all(const char *path, size_t max, char **data, size_t *len, char *err,
                   size_t errlen);

/* Formats a problem found in a file: "FILE:LINE:COL: MSG" at a position
 * (1-based), or "FILE: MSG" for a problem of the whole file (line 0), or
 * just MSG when it names the file already (a read error). */
void file_error_format(char *out, size_t n, const char *file, int line, int column,
                       const char *msg);

/* Line and column (1-based) of byte offset at in data[0..len), for messages
 * about JSON files. Columns count characters, as libyaml's do for YAML. */
void file_position(const char *data, size_t len, size_t at, int *line, int *column);

#endif

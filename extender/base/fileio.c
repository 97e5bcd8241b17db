/*
 * fileio.c - see fileio.h.
 */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool file_read_all(const char *path, size_t max, char **data, size_t *len, char *err,
                   size_t errlen)
{
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return false;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s is not a regular file", path);
        close(fd);
        return false;
    }
    if ((unsigned long long)st.st_size > max) {
        snprintf(err, errlen, "%s is %lld bytes, over the limit of %zu", path,
                 (long long)st.st_size, max);
        close(fd);
        return false;
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        snprintf(err, errlen, "out of memory reading %s", path);
        close(fd);
        return false;
    }
    for (;;) {
        if (n == cap) {
            if (cap > max) {
                snprintf(err, errlen, "%s grew past the limit of %zu bytes while read", path,
                         max);
                free(buf);
                close(fd);
                return false;
            }
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                snprintf(err, errlen, "out of memory reading %s", path);
                free(buf);
                close(fd);
                return false;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "reading %s failed: %s", path, strerror(errno));
            free(buf);
            close(fd);
            return false;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (n > max) {
        snprintf(err, errlen, "%s grew past the limit of %zu bytes while read", path, max);
        free(buf);
        return false;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return true;
}

void file_error_format(char *out, size_t n, const char *file, int line, int column,
                       const char *msg)
{
    if (line > 0)
        snprintf(out, n, "%s:%d:%d: %s", file, line, column, msg);
    else if (*file && strstr(msg, file))
        snprintf(out, n, "%s", msg);
    else
        snprintf(out, n, "%s: %s", file, msg);
}

void file_position(const char *data, size_t len, size_t at, int *line, int *column)
{
    int l = 1, c = 1;
    for (size_t i = 0; i < at && i < len; i++) {
        if (data[i] == '\n') {
            l++;
            c = 1;
        } else if (((unsigned char)data[i] & 0xC0) != 0x80) {
            c++; /* a UTF-8 continuation byte is not a column of its own */
        }
    }
    *line = l;
    *column = c;
}

/* INCRBYFLOAT exactly as Redis 7 computes it (util.c string2ld / ld2string LD_STR_HUMAN).
 * Rust has no long double, and Redis's replies depend on its extra precision. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LONG_DOUBLE_CHARS 5 * 1024

static int string2ld(const char *s, size_t slen, long double *dp) {
    char buf[MAX_LONG_DOUBLE_CHARS];
    long double value;
    char *eptr;

    if (slen == 0 || slen >= sizeof(buf)) return 0;
    memcpy(buf, s, slen);
    buf[slen] = '\0';

    errno = 0;
    value = strtold(buf, &eptr);
    if (isspace((unsigned char)buf[0]) || eptr[0] != '\0' ||
        ((errno == ERANGE) &&
         (value == HUGE_VALL || value == -HUGE_VALL || fpclassify(value) == FP_ZERO)) ||
        errno == EINVAL || isnan(value))
        return 0;
    *dp = value;
    return 1;
}

/* Returns 0 on success, 1 if the current value is not a float, 2 if the increment is not,
 * 3 if the result is NaN or infinite, 4 if it does not fit the output buffer. */
int sluice_incrbyfloat(const char *cur, size_t curlen, int has_cur, const char *incr,
                       size_t incrlen, char *out, size_t outcap, size_t *outlen) {
    long double value = 0, increment;
    if (has_cur && !string2ld(cur, curlen, &value)) return 1;
    if (!string2ld(incr, incrlen, &increment)) return 2;
    value += increment;
    if (isnan(value) || isinf(value)) return 3;

    int l = snprintf(out, outcap, "%.17Lf", value);
    if (l < 0 || (size_t)l + 1 > outcap) return 4;
    if (strchr(out, '.') != NULL) {
        char *p = out + l - 1;
        while (*p == '0') {
            p--;
            l--;
        }
        if (*p == '.') l--;
    }
    if (l == 2 && out[0] == '-' && out[1] == '0') {
        out[0] = '0';
        l = 1;
    }
    *outlen = (size_t)l;
    return 0;
}

/* A double as Redis 7.0's string2d reads a sorted-set score or weight: strtod over the whole
 * string, no leading space, no overflow or underflow to zero, not NaN. Returns 1 and sets *dp
 * when it is one. */
int sluice_string2d(const char *s, size_t slen, double *dp) {
    char *eptr;
    if (slen == 0) return 0;
    char *buf = malloc(slen + 1);
    if (buf == NULL) return 0;
    memcpy(buf, s, slen);
    buf[slen] = '\0';
    errno = 0;
    double value = strtod(buf, &eptr);
    int ok = !(isspace((unsigned char)buf[0]) || (size_t)(eptr - buf) != slen ||
               (errno == ERANGE &&
                (value == HUGE_VAL || value == -HUGE_VAL || fpclassify(value) == FP_ZERO)) ||
               isnan(value));
    free(buf);
    if (ok) *dp = value;
    return ok;
}

/* A double as Redis 7.0's zslParseRange reads a range end (after any '('): strtod up to the
 * first NUL byte, which must be where it stopped; not NaN. An empty string is 0. */
int sluice_range_strtod(const char *s, size_t slen, double *dp) {
    char *buf = malloc(slen + 1);
    char *eptr;
    if (buf == NULL) return 0;
    memcpy(buf, s, slen);
    buf[slen] = '\0';
    double value = strtod(buf, &eptr);
    int ok = eptr[0] == '\0' && !isnan(value);
    free(buf);
    if (ok) *dp = value;
    return ok;
}

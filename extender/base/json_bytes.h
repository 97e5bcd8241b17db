/*
 * json_bytes.h - finding the bytes of a JSON string that need attention:
 * '"', '\\', control characters (below 0x20) and bytes of 0x80 and up (the
 * start of a UTF-8 sequence, which a reader must check and a writer must
 * check before copying). Everything else passes through unchanged, both
 * when scanning input and when writing output, so both sides skip plain
 * runs sixteen bytes at a time (SSE2 is part of x86-64; other machines take
 * an eight-byte path).
 */
#ifndef CE_JSON_BYTES_H
#define CE_JSON_BYTES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Length of the prefix of p[0..n) that is plain printable ASCII: no quote,
 * backslash, control character or byte >= 0x80. */
static inline size_t json_ascii_plain_prefix(const char *p, size_t n)
{
    size_t i = 0;
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i bslash = _mm_set1_epi8('\\');
    const __m128i space = _mm_set1_epi8(0x20);
    for (; n - i >= 16; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
        /* As signed bytes, both the control characters (0..0x1f) and the
         * bytes >= 0x80 (negative) are less than 0x20: one compare. */
        __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                                   _mm_cmplt_epi8(v, space));
        unsigned m = (unsigned)_mm_movemask_epi8(hit);
        if (m)
            return i + (unsigned)__builtin_ctz(m);
    }
#else
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    for (; n - i >= 8; i += 8) {
        uint64_t v, q, b;
        memcpy(&v, p + i, 8);
        q = v ^ (ones * '"');
        b = v ^ (ones * '\\');
        /* A zero byte in q or b, a byte below 0x20, or a high bit: stop. */
        if ((((q - ones) & ~q) | ((b - ones) & ~b) | (v - ones * 0x20) | v) & highs)
            break;
    }
#endif
    for (; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80)
            break;
    }
    return i;
}

#endif

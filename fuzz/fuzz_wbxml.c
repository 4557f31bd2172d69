/* libFuzzer harness of the C kernels in eas/_wbxml.c.
 *
 * Built by fuzz/run:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
 *         -I eas -I fuzz/build fuzz/fuzz_wbxml.c -o fuzz/build/fuzz_wbxml
 * fuzz/build/valid_table.h is generated from eas.tags by fuzz/gen_valid_table.py.
 *
 * Per input:
 *  - decode with the real valid-token table and loose limits (the reference result);
 *  - decode again with every token 5..63 valid, with small and exact tape capacities and
 *    with tight limits, and check each result against the reference;
 *  - on success, check the tape is well formed, turn it into a Writer tape, encode it
 *    (also into too-small buffers), decode the output and check the round trip is exact;
 *  - feed ops made from the input bytes straight to the encoder.
 * Any failed check aborts, which libFuzzer reports as a crash.
 */

#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "_wbxml.c"
#include "valid_table.h"

#define CHECK(cond) do { if (!(cond)) { \
    fprintf(stderr, "fuzz_wbxml: check failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
    abort(); } } while (0)

static uint64_t ALL_VALID[REAL_NPAGES];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    for (int p = 0; p < REAL_NPAGES; p++)
        ALL_VALID[p] = ~(uint64_t)0 << 5; /* tokens 5..63 */
    return 0;
}

typedef struct {
    int64_t r;      /* eas_wbxml_decode's result */
    size_t at;      /* info[0] on error */
    size_t charset; /* info[1] on success */
    uint32_t *tape; /* malloc'd, exactly cap words (so ASan sees overruns) */
} decoded;

static decoded run_decode(const uint8_t *data, size_t len, const uint64_t *valid, size_t npages,
                          uint32_t max_depth, uint32_t max_tokens, uint32_t max_string, size_t cap)
{
    decoded d;
    size_t info[2] = {0xDEAD, 0xBEEF};
    d.tape = malloc(cap ? cap * sizeof(uint32_t) : 1);
    CHECK(d.tape);
    d.r = eas_wbxml_decode(data, len, valid, npages, max_depth, max_tokens, max_string, d.tape, cap, info);
    d.at = info[0];
    d.charset = info[1];
    if (d.r >= 0)
        CHECK((size_t)d.r <= cap && d.r % 3 == 0);
    else if (d.r != -E_TAPE_FULL)
        CHECK(d.r >= -E_TRAILING && d.at <= len);
    return d;
}

static int same_tape(const decoded *a, const decoded *b)
{
    return a->r == b->r && a->r >= 0 && a->charset == b->charset
        && memcmp(a->tape, b->tape, (size_t)a->r * sizeof(uint32_t)) == 0;
}

/* A Writer tape: ops, NUL-terminated strings, blobs. */
typedef struct {
    uint32_t *ops; size_t nops;
    uint8_t *strs; size_t nstrs;
    uint8_t *blobs; size_t nblobs;
} wtape;

static size_t put_utf8(uint8_t *out, uint32_t c)
{
    if (c < 0x80) { out[0] = (uint8_t)c; return 1; }
    if (c < 0x800) { out[0] = (uint8_t)(0xC0 | c >> 6); out[1] = (uint8_t)(0x80 | (c & 0x3F)); return 2; }
    if (c < 0x10000) {
        out[0] = (uint8_t)(0xE0 | c >> 12); out[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (c & 0x3F)); return 3;
    }
    out[0] = (uint8_t)(0xF0 | c >> 18); out[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3F)); out[3] = (uint8_t)(0x80 | (c & 0x3F)); return 4;
}

/* Checks that a successful decode tape is well formed and turns it into a Writer tape:
 * OPEN + pieces + CLOSE becomes one LEAF_STR (entities as UTF-8) or LEAF_OPAQUE. */
static wtape to_writer(const uint8_t *data, size_t len, const uint32_t *t, size_t n)
{
    wtape w;
    size_t nstrs = 0, nblobs = 0, depth = 0, roots = 0;

    /* Pass 1: validate, and size the strings and blobs (STR_T can repeat a string). */
    for (size_t i = 0; i < n; i += 3) {
        uint32_t kind = t[i] & 7, tag = t[i] >> 3, a = t[i + 1], b = t[i + 2];
        if (kind != K_CLOSE) {
            CHECK(kind == K_ENTITY || kind == K_STR || kind == K_OPAQUE
                  || (tag >> 8 < REAL_NPAGES && (tag & 0xFF) <= 0x3F && ((REAL_VALID[tag >> 8] >> (tag & 0x3F)) & 1)));
            if (kind == K_OPEN || kind == K_EMPTY || kind == K_LEAF_STR || kind == K_LEAF_OPAQUE)
                if (!depth)
                    roots++;
        }
        switch (kind) {
        case K_OPEN:
            CHECK(i + 3 < n && (t[i + 3] & 7) != K_CLOSE); /* OPEN + END folds to EMPTY */
            depth++;
            break;
        case K_CLOSE:
            CHECK(depth > 0 && t[i] == K_CLOSE && a == 0 && b == 0);
            depth--;
            break;
        case K_EMPTY:
            CHECK(a == 0 && b == 0);
            break;
        case K_LEAF_STR: case K_STR:
            CHECK(a <= len && b <= len - a && a + b < len && data[a + b] == 0 && !memchr(data + a, 0, b));
            nstrs += b + 1;
            if (kind == K_STR)
                CHECK(depth > 0 && tag == 0);
            break;
        case K_LEAF_OPAQUE: case K_OPAQUE:
            CHECK(a <= len && b <= len - a);
            nblobs += b;
            if (kind == K_OPAQUE)
                CHECK(depth > 0 && tag == 0);
            break;
        case K_ENTITY:
            CHECK(depth > 0 && tag == 0 && b == 0 && a > 0 && a <= 0x10FFFF && (a < 0xD800 || a > 0xDFFF));
            nstrs += 4;
            break;
        }
    }
    CHECK(depth == 0 && roots == 1);

    w.ops = malloc((n / 3 * 2 + 1) * sizeof(uint32_t));
    w.strs = malloc(nstrs + 1);
    w.blobs = malloc(nblobs + 1);
    CHECK(w.ops && w.strs && w.blobs);
    w.nops = w.nstrs = w.nblobs = 0;

    for (size_t i = 0; i < n; i += 3) {
        uint32_t code = t[i], kind = code & 7, a = t[i + 1], b = t[i + 2];
        switch (kind) {
        case K_OPEN: {
            size_t j = i + 3, npieces = 0;
            int text = 0, opaque = 0;
            for (; j < n; j += 3) {
                uint32_t k = t[j] & 7;
                if (k == K_STR || k == K_ENTITY)
                    text = 1;
                else if (k == K_OPAQUE)
                    opaque = 1;
                else
                    break;
                npieces++;
            }
            if (!npieces) {
                w.ops[w.nops++] = code;
                break;
            }
            /* Pieces are the whole content: no mixing, closed at once, never one
             * lone STR/OPAQUE (the decoder folds that into a leaf). */
            CHECK(j < n && (t[j] & 7) == K_CLOSE && !(text && opaque));
            CHECK(npieces > 1 || (t[i + 3] & 7) == K_ENTITY);
            if (opaque) {
                size_t start = w.nblobs;
                for (size_t k = i + 3; k < j; k += 3) {
                    memcpy(w.blobs + w.nblobs, data + t[k + 1], t[k + 2]);
                    w.nblobs += t[k + 2];
                }
                w.ops[w.nops++] = (code & ~7u) | K_LEAF_OPAQUE;
                w.ops[w.nops++] = (uint32_t)(w.nblobs - start);
            } else {
                for (size_t k = i + 3; k < j; k += 3) {
                    if ((t[k] & 7) == K_ENTITY) {
                        w.nstrs += put_utf8(w.strs + w.nstrs, t[k + 1]);
                    } else {
                        memcpy(w.strs + w.nstrs, data + t[k + 1], t[k + 2]);
                        w.nstrs += t[k + 2];
                    }
                }
                w.strs[w.nstrs++] = 0;
                w.ops[w.nops++] = (code & ~7u) | K_LEAF_STR;
            }
            i = j; /* the CLOSE, consumed with the leaf */
            break;
        }
        case K_CLOSE: case K_EMPTY:
            w.ops[w.nops++] = code;
            break;
        case K_LEAF_STR:
            w.ops[w.nops++] = code;
            memcpy(w.strs + w.nstrs, data + a, b);
            w.nstrs += b;
            w.strs[w.nstrs++] = 0;
            break;
        case K_LEAF_OPAQUE:
            w.ops[w.nops++] = code;
            w.ops[w.nops++] = b;
            memcpy(w.blobs + w.nblobs, data + a, b);
            w.nblobs += b;
            break;
        default:
            CHECK(0 && "a text piece outside OPEN ... CLOSE");
        }
    }
    return w;
}

static void free_writer(wtape *w)
{
    free(w->ops); free(w->strs); free(w->blobs);
}

static int64_t run_encode(const wtape *w, const uint64_t *valid, size_t npages, size_t cap, uint8_t **out)
{
    size_t err = (size_t)-1;
    *out = malloc(cap ? cap : 1);
    CHECK(*out);
    int64_t r = eas_wbxml_encode(w->ops, w->nops, w->strs, w->nstrs, w->blobs, w->nblobs,
                                 valid, npages, *out, cap, &err);
    if (r >= 0)
        CHECK((size_t)r <= cap);
    else
        CHECK(r <= -E_BAD_OP && r >= -E_OUT_FULL && err <= w->nops);
    return r;
}

/* Encode a decoded document, decode the output, and check the round trip is exact. */
static void round_trip(const uint8_t *data, size_t len, const decoded *d)
{
    wtape w = to_writer(data, len, d->tape, (size_t)d->r);
    size_t cap = 4 + 5 * w.nops + w.nstrs + w.nblobs; /* the bound eas/wbxml/_cffi.py uses */
    uint8_t *out;
    int64_t r = run_encode(&w, REAL_VALID, REAL_NPAGES, cap, &out);
    CHECK(r >= 0);

    /* Too small an output buffer is E_OUT_FULL, never an overrun. */
    size_t small[3] = {(size_t)r - 1, (size_t)r / 2, (size_t)r > 4 ? 4 + (len % ((size_t)r - 4)) : 0};
    for (int k = 0; k < 3; k++) {
        uint8_t *o2;
        if (small[k] >= (size_t)r)
            continue;
        CHECK(run_encode(&w, REAL_VALID, REAL_NPAGES, small[k], &o2) == -E_OUT_FULL);
        free(o2);
    }

    decoded d2 = run_decode(out, (size_t)r, REAL_VALID, REAL_NPAGES, UINT32_MAX, UINT32_MAX, UINT32_MAX,
                            3 * ((size_t)r + 1));
    if (d2.r < 0)
        fprintf(stderr, "re-decode of the encoder's output failed: %lld at %zu\n", (long long)d2.r, d2.at);
    CHECK(d2.r >= 0 && d2.charset == 106);
    wtape w2 = to_writer(out, (size_t)r, d2.tape, (size_t)d2.r);
    CHECK(w2.nops == w.nops && !memcmp(w2.ops, w.ops, w.nops * sizeof(uint32_t)));
    CHECK(w2.nstrs == w.nstrs && !memcmp(w2.strs, w.strs, w.nstrs));
    CHECK(w2.nblobs == w.nblobs && !memcmp(w2.blobs, w.blobs, w.nblobs));
    uint8_t *out2;
    int64_t r2 = run_encode(&w2, REAL_VALID, REAL_NPAGES, cap, &out2);
    CHECK(r2 == r && !memcmp(out, out2, (size_t)r));
    free(out2);
    free_writer(&w2);
    free(d2.tape);
    free(out);
    free_writer(&w);
}

/* Is b the same result as the reference a, allowing a refusal of the given limit codes
 * at or before a's offset (or before the end, when a succeeded)? */
static void check_limited(const decoded *a, const decoded *b, size_t len)
{
    if (b->r == -E_DEPTH || b->r == -E_TOKENS || b->r == -E_STRING_LENGTH) {
        CHECK(a->r >= 0 ? b->at < len : b->at <= a->at);
        return;
    }
    if (a->r >= 0)
        CHECK(same_tape(a, b));
    else
        CHECK(b->r == a->r && b->at == a->at);
}

static uint32_t hash(const uint8_t *data, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ data[i]) * 16777619u;
    return h;
}

/* Ops made from the input bytes, straight into the encoder: it must refuse or
 * produce a document that decodes. */
static void raw_encode(const uint8_t *data, size_t len)
{
    if (len < 2)
        return;
    size_t nops = len / 2;
    wtape w;
    w.ops = malloc(nops * sizeof(uint32_t));
    CHECK(w.ops);
    for (size_t i = 0; i < nops; i++) {
        uint8_t b0 = data[2 * i], b1 = data[2 * i + 1];
        uint32_t kind = b0 & 7, page = (uint32_t)(b0 >> 3) % (REAL_NPAGES + 1);
        w.ops[i] = kind == K_CLOSE ? K_CLOSE : ((page << 8 | (b1 & 0x7F)) << 3 | kind);
        if (i > 0 && (w.ops[i - 1] & 7) == K_LEAF_OPAQUE && (data[2 * i - 1] & 0x80))
            w.ops[i] = b1; /* a blob length */
    }
    w.nops = nops;
    /* Strings: the input up to its last NUL; blobs: the whole input. */
    const uint8_t *last = NULL;
    for (size_t i = 0; i < len; i++)
        if (!data[i])
            last = data + i;
    w.strs = (uint8_t *)data;
    w.nstrs = last ? (size_t)(last - data) + 1 : 0;
    w.blobs = (uint8_t *)data + len / 2;
    w.nblobs = len - len / 2;
    size_t cap = 4 + 5 * w.nops + w.nstrs + w.nblobs;
    uint8_t *out;
    int64_t r = run_encode(&w, REAL_VALID, REAL_NPAGES, cap, &out);
    if (r >= 0) {
        decoded d = run_decode(out, (size_t)r, REAL_VALID, REAL_NPAGES, UINT32_MAX, UINT32_MAX, UINT32_MAX,
                               3 * ((size_t)r + 1));
        CHECK(d.r >= 0 || d.r == -E_DEPTH);
        free(d.tape);
    }
    free(out);
    free(w.ops);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    /* Reference: the real table, loose limits (max_depth above the cap is clamped to
     * it), and a tape of one record per input byte, which always suffices. */
    size_t big = 3 * (len + 1);
    decoded ref = run_decode(data, len, REAL_VALID, REAL_NPAGES, UINT32_MAX, UINT32_MAX, UINT32_MAX, big);
    CHECK(ref.r != -E_TAPE_FULL);
    if (ref.r >= 0)
        CHECK(ref.charset == 106 || ref.charset == 3 || ref.charset == 4 || ref.charset == 0);

    /* Every token valid: accepts a superset, identically up to the first unknown tag. */
    decoded all = run_decode(data, len, ALL_VALID, REAL_NPAGES, UINT32_MAX, UINT32_MAX, UINT32_MAX, big);
    if (ref.r >= 0)
        CHECK(same_tape(&ref, &all));
    else if (ref.r != -E_UNKNOWN_TAG)
        CHECK(all.r == ref.r && all.at == ref.at);
    free(all.tape);

    /* Tape capacities: too small is E_TAPE_FULL, never an overrun or another answer. */
    uint32_t h = hash(data, len);
    size_t caps[5] = {0, 3, h % (big + 1), ref.r > 0 ? (size_t)ref.r - 1 : 1, ref.r >= 0 ? (size_t)ref.r + 3 : 6};
    for (int k = 0; k < 5; k++) {
        decoded d = run_decode(data, len, REAL_VALID, REAL_NPAGES, UINT32_MAX, UINT32_MAX, UINT32_MAX, caps[k]);
        if (d.r == -E_TAPE_FULL)
            CHECK(ref.r < 0 || caps[k] < (size_t)ref.r + 3);
        else if (ref.r >= 0)
            CHECK(same_tape(&ref, &d) && caps[k] >= (size_t)ref.r);
        else
            CHECK(d.r == ref.r && d.at == ref.at);
        if (ref.r >= 0 && caps[k] < (size_t)ref.r)
            CHECK(d.r == -E_TAPE_FULL);
        free(d.tape);
    }

    /* Tight limits: the same answer, or the limit's refusal no later than the answer. */
    for (int k = 0; k < 3; k++) {
        uint32_t x = h >> (8 * k);
        uint32_t depth = 1 + x % 8, tokens = 1 + (x >> 3) % 64, string = (x >> 9) % 32;
        decoded d = run_decode(data, len, REAL_VALID, REAL_NPAGES,
                               k == 0 ? depth : UINT32_MAX, k == 1 ? tokens : UINT32_MAX,
                               k == 2 ? string : UINT32_MAX, big);
        check_limited(&ref, &d, len);
        free(d.tape);
    }
    {
        decoded d = run_decode(data, len, REAL_VALID, REAL_NPAGES, 1 + h % 8, 1 + (h >> 3) % 256, (h >> 11) % 64, big);
        check_limited(&ref, &d, len);
        free(d.tape);
    }

    if (ref.r >= 0)
        round_trip(data, len, &ref);
    free(ref.tape);

    raw_encode(data, len);
    return 0;
}

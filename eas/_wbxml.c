/* WBXML kernels for ActiveSync: decode to a tape, encode from a tape.
 *
 * WBXML 1.3 (W3C NOTE-wbxml-19990624, section 5) as profiled by MS-ASWBXML: tags on
 * code pages, inline strings, opaque data. String tables and entities are read;
 * attributes, PI, EXT and LITERAL tokens are refused. Every read is bounds-checked
 * against len; nothing is allocated. eas/wbxml/_pure.py is the line-for-line twin.
 */

#include <stdint.h>
#include <stddef.h>
#include <string.h>

#define EAS_WBXML_DEPTH_CAP 256

/* Tape record kinds (low 3 bits of a record's code word). */
enum { K_ENTITY = 0, K_OPEN = 1, K_CLOSE = 2, K_LEAF_STR = 3, K_LEAF_OPAQUE = 4,
       K_EMPTY = 5, K_STR = 6, K_OPAQUE = 7 };

/* Error codes, returned negated; eas/wbxml/_tape.py holds their messages. */
enum { E_TRUNCATED = 1, E_VERSION, E_MB_OVERFLOW, E_CHARSET, E_STRTBL_LENGTH,
       E_UNKNOWN_PAGE, E_UNKNOWN_TAG, E_ATTRIBUTES, E_LITERAL, E_EXT, E_PI,
       E_END_WITHOUT_START, E_TEXT_OUTSIDE, E_MIXED, E_DEPTH, E_TOKENS,
       E_STRING_LENGTH, E_UNTERMINATED, E_STRTBL_REF, E_OPAQUE_LENGTH, E_ENTITY,
       E_TRAILING, E_TAPE_FULL, E_SIZE /* message larger than the limit: checked by the callers */,
       /* encoder */
       E_BAD_OP = 40, E_ENC_TAG, E_UNBALANCED, E_STRINGS, E_BLOBS, E_ROOTS, E_OUT_FULL };

/* Flags per open element, to refuse mixed content. */
enum { F_TEXT = 1, F_OPAQUE = 2, F_CHILD = 4 };

/* Read a WBXML mb_u_int32 at *pos. */
static int read_mb(const uint8_t *data, size_t len, size_t *pos, uint32_t *out)
{
    uint32_t v = 0;
    size_t i = *pos;
    for (int n = 0; n < 5; n++) {
        if (i >= len)
            return -E_TRUNCATED;
        uint8_t b = data[i++];
        if (v >> 25)
            return -E_MB_OVERFLOW;
        v = (v << 7) | (b & 0x7F);
        if (!(b & 0x80)) {
            *pos = i;
            *out = v;
            return 0;
        }
    }
    return -E_MB_OVERFLOW;
}

#define FAIL(code, at) do { info[0] = (at); return -(code); } while (0)
#define EMIT(c, x, y) do { if (n + 3 > tape_cap) return -E_TAPE_FULL; \
    tape[n] = (c); tape[n + 1] = (uint32_t)(x); tape[n + 2] = (uint32_t)(y); n += 3; } while (0)

int64_t eas_wbxml_decode(const uint8_t *data, size_t len,
                         const uint64_t *valid, size_t npages,
                         uint32_t max_depth, uint32_t max_tokens, uint32_t max_string,
                         uint32_t *tape, size_t tape_cap, size_t *info)
{
    uint8_t flags[EAS_WBXML_DEPTH_CAP + 1];
    size_t pos = 0, n = 0, at;
    uint32_t v, page = 0, depth = 0, tokens = 0, publicid, charset, strtbl_len;
    size_t strtbl = 0, publicid_at = 0;
    int rc, root_done = 0;

    if (max_depth > EAS_WBXML_DEPTH_CAP)
        max_depth = EAS_WBXML_DEPTH_CAP;
    info[0] = info[1] = 0;

    /* Header: version, publicid, charset, string table (WBXML 1.3 section 5.3). */
    if (len < 1)
        FAIL(E_TRUNCATED, len);
    if (data[0] < 0x01 || data[0] > 0x03)
        FAIL(E_VERSION, 0);
    pos = 1;
    if ((rc = read_mb(data, len, &pos, &publicid)) < 0)
        FAIL(-rc, rc == -E_TRUNCATED ? len : 1);
    if (publicid == 0) { /* the public id is a string table index */
        publicid_at = pos;
        if ((rc = read_mb(data, len, &pos, &publicid)) < 0)
            FAIL(-rc, rc == -E_TRUNCATED ? len : publicid_at);
    }
    at = pos;
    if ((rc = read_mb(data, len, &pos, &charset)) < 0)
        FAIL(-rc, rc == -E_TRUNCATED ? len : at);
    if (charset != 106 && charset != 3 && charset != 4 && charset != 0)
        FAIL(E_CHARSET, at);
    at = pos;
    if ((rc = read_mb(data, len, &pos, &strtbl_len)) < 0)
        FAIL(-rc, rc == -E_TRUNCATED ? len : at);
    if (strtbl_len > len - pos)
        FAIL(E_STRTBL_LENGTH, at);
    strtbl = pos;
    pos += strtbl_len;
    if (publicid_at && publicid >= strtbl_len)
        FAIL(E_STRTBL_REF, publicid_at);
    info[1] = charset;

    /* Body: one root element (WBXML 1.3 section 5.8.1). */
    flags[0] = 0;
    while (pos < len) {
        uint8_t b = data[pos];
        at = pos;
        if (root_done)
            FAIL(E_TRAILING, at);
        if (++tokens > max_tokens)
            FAIL(E_TOKENS, at);
        pos++;
        if ((b & 0x3F) >= 5) { /* a tag */
            uint32_t token = b & 0x3F;
            if (b & 0x80)
                FAIL(E_ATTRIBUTES, at);
            if (!((valid[page] >> token) & 1))
                FAIL(E_UNKNOWN_TAG, at);
            if (depth + 1 > max_depth)
                FAIL(E_DEPTH, at);
            if (depth) {
                if (flags[depth] & (F_TEXT | F_OPAQUE))
                    FAIL(E_MIXED, at);
                flags[depth] |= F_CHILD;
            }
            uint32_t code = (page << 8 | token) << 3;
            if (b & 0x40) {
                EMIT(code | K_OPEN, 0, 0);
                flags[++depth] = 0;
            } else {
                EMIT(code | K_EMPTY, 0, 0);
                if (!depth)
                    root_done = 1;
            }
            continue;
        }
        switch (b) {
        case 0x00: /* SWITCH_PAGE */
            if (pos >= len)
                FAIL(E_TRUNCATED, len);
            if (data[pos] >= npages)
                FAIL(E_UNKNOWN_PAGE, at);
            page = data[pos++];
            break;
        case 0x01: /* END */
            if (!depth)
                FAIL(E_END_WITHOUT_START, at);
            /* Fold OPEN + one piece into a leaf, and OPEN alone into an empty element. */
            if (n >= 3 && (tape[n - 3] & 7) == K_OPEN) {
                tape[n - 3] = (tape[n - 3] & ~7u) | K_EMPTY;
            } else if (n >= 6 && (tape[n - 6] & 7) == K_OPEN && (tape[n - 3] & 7) >= K_STR) {
                tape[n - 6] = (tape[n - 6] & ~7u) | ((tape[n - 3] & 7) == K_STR ? K_LEAF_STR : K_LEAF_OPAQUE);
                tape[n - 5] = tape[n - 2];
                tape[n - 4] = tape[n - 1];
                n -= 3;
            } else {
                EMIT(K_CLOSE, 0, 0);
            }
            if (!--depth)
                root_done = 1;
            break;
        case 0x02: /* ENTITY */
            if (!depth)
                FAIL(E_TEXT_OUTSIDE, at);
            if ((rc = read_mb(data, len, &pos, &v)) < 0)
                FAIL(-rc, rc == -E_TRUNCATED ? len : at);
            if (v == 0 || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
                FAIL(E_ENTITY, at);
            if (flags[depth] & (F_OPAQUE | F_CHILD))
                FAIL(E_MIXED, at);
            flags[depth] |= F_TEXT;
            EMIT(K_ENTITY, v, 0);
            break;
        case 0x03: { /* STR_I */
            if (!depth)
                FAIL(E_TEXT_OUTSIDE, at);
            const uint8_t *nul = memchr(data + pos, 0, len - pos);
            if (!nul)
                FAIL(E_UNTERMINATED, at);
            size_t slen = (size_t)(nul - (data + pos));
            if (slen > max_string)
                FAIL(E_STRING_LENGTH, at);
            if (flags[depth] & (F_OPAQUE | F_CHILD))
                FAIL(E_MIXED, at);
            flags[depth] |= F_TEXT;
            EMIT(K_STR, pos, slen);
            pos += slen + 1;
            break;
        }
        case 0x83: { /* STR_T */
            if (!depth)
                FAIL(E_TEXT_OUTSIDE, at);
            if ((rc = read_mb(data, len, &pos, &v)) < 0)
                FAIL(-rc, rc == -E_TRUNCATED ? len : at);
            if (v >= strtbl_len)
                FAIL(E_STRTBL_REF, at);
            const uint8_t *nul = memchr(data + strtbl + v, 0, strtbl_len - v);
            if (!nul)
                FAIL(E_UNTERMINATED, at);
            size_t slen = (size_t)(nul - (data + strtbl + v));
            if (slen > max_string)
                FAIL(E_STRING_LENGTH, at);
            if (flags[depth] & (F_OPAQUE | F_CHILD))
                FAIL(E_MIXED, at);
            flags[depth] |= F_TEXT;
            EMIT(K_STR, strtbl + v, slen);
            break;
        }
        case 0xC3: /* OPAQUE */
            if (!depth)
                FAIL(E_TEXT_OUTSIDE, at);
            if ((rc = read_mb(data, len, &pos, &v)) < 0)
                FAIL(-rc, rc == -E_TRUNCATED ? len : at);
            if (v > len - pos)
                FAIL(E_OPAQUE_LENGTH, at);
            if (v > max_string)
                FAIL(E_STRING_LENGTH, at);
            if (flags[depth] & (F_TEXT | F_CHILD))
                FAIL(E_MIXED, at);
            flags[depth] |= F_OPAQUE;
            EMIT(K_OPAQUE, pos, v);
            pos += v;
            break;
        case 0x04: case 0x44: case 0x84: case 0xC4:
            FAIL(E_LITERAL, at);
        case 0x43:
            FAIL(E_PI, at);
        default: /* EXT_I_n, EXT_T_n, EXT_n */
            FAIL(E_EXT, at);
        }
    }
    if (!root_done)
        FAIL(E_TRUNCATED, len);
    return (int64_t)n;
}

#undef EMIT
#define PUT(byte) do { if (o >= out_cap) { *err_index = i; return -E_OUT_FULL; } out[o++] = (byte); } while (0)
#define ERR(code) do { *err_index = i; return -(code); } while (0)

int64_t eas_wbxml_encode(const uint32_t *ops, size_t nops,
                         const uint8_t *strs, size_t strs_len,
                         const uint8_t *blobs, size_t blobs_len,
                         const uint64_t *valid, size_t npages,
                         uint8_t *out, size_t out_cap, size_t *err_index)
{
    size_t o = 0, i = 0, spos = 0, bpos = 0, depth = 0, roots = 0;
    uint32_t page = 0;

    /* Header: WBXML 1.3, unknown public id, UTF-8, empty string table. */
    PUT(0x03); PUT(0x01); PUT(0x6A); PUT(0x00);
    for (i = 0; i < nops; i++) {
        uint32_t op = ops[i], kind = op & 7, tag = op >> 3;
        if (kind == K_CLOSE) {
            if (!depth)
                ERR(E_UNBALANCED);
            PUT(0x01);
            depth--;
            continue;
        }
        if (kind != K_OPEN && kind != K_LEAF_STR && kind != K_LEAF_OPAQUE && kind != K_EMPTY)
            ERR(E_BAD_OP);
        if (tag >> 8 >= npages || (tag & 0xFF) > 0x3F || !((valid[tag >> 8] >> (tag & 0x3F)) & 1))
            ERR(E_ENC_TAG);
        if (!depth && roots++)
            ERR(E_ROOTS);
        if (tag >> 8 != page) {
            page = tag >> 8;
            PUT(0x00);
            PUT((uint8_t)page);
        }
        switch (kind) {
        case K_OPEN:
            PUT((uint8_t)((tag & 0x3F) | 0x40));
            depth++;
            break;
        case K_EMPTY:
            PUT((uint8_t)(tag & 0x3F));
            break;
        case K_LEAF_STR: {
            const uint8_t *nul = spos < strs_len ? memchr(strs + spos, 0, strs_len - spos) : NULL;
            if (!nul)
                ERR(E_STRINGS);
            size_t slen = (size_t)(nul - (strs + spos)) + 1;
            if (out_cap - o < slen + 3)
                ERR(E_OUT_FULL);
            out[o++] = (uint8_t)((tag & 0x3F) | 0x40);
            out[o++] = 0x03;
            memcpy(out + o, strs + spos, slen);
            o += slen;
            out[o++] = 0x01;
            spos += slen;
            break;
        }
        case K_LEAF_OPAQUE: {
            if (i + 1 >= nops)
                ERR(E_BLOBS);
            uint32_t blen = ops[++i];
            if (blen > blobs_len - bpos)
                ERR(E_BLOBS);
            uint8_t mb[5];
            int k = 4;
            uint32_t v = blen >> 7;
            mb[4] = (uint8_t)(blen & 0x7F);
            while (v) {
                mb[--k] = (uint8_t)(0x80 | (v & 0x7F));
                v >>= 7;
            }
            if (out_cap - o < (size_t)(5 - k) + blen + 3)
                ERR(E_OUT_FULL);
            out[o++] = (uint8_t)((tag & 0x3F) | 0x40);
            out[o++] = 0xC3;
            memcpy(out + o, mb + k, (size_t)(5 - k));
            o += (size_t)(5 - k);
            if (blen) /* blobs may be NULL when there are none */
                memcpy(out + o, blobs + bpos, blen);
            o += blen;
            bpos += blen;
            out[o++] = 0x01;
            break;
        }
        }
    }
    i = nops;
    if (depth)
        ERR(E_UNBALANCED);
    if (!roots)
        ERR(E_ROOTS);
    if (spos != strs_len)
        ERR(E_STRINGS);
    if (bpos != blobs_len)
        ERR(E_BLOBS);
    return (int64_t)o;
}

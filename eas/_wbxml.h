/* Prototypes of the WBXML kernels; _wbxml_build.py reads this file as the cffi cdef.
 *
 * Both functions take buffers and lengths from Python, never allocate, never read or
 * write past a length, and return a count or a negative EAS_WBXML_E* code. The tape
 * formats and error codes are mirrored by eas/wbxml/_pure.py and eas/wbxml/_tape.py.
 */

#define EAS_WBXML_DEPTH_CAP 256

/* Decode a whole WBXML document into a tape of 3-word records (code, a, b), where
 * code = tag << 3 | kind. Returns the number of words written, or a negative error
 * code with info[0] = the byte offset at fault. On success info[0] is unused and
 * info[1] holds the document's charset (IANA MIBenum). valid[page] has bit t set when
 * token t exists on that page. */
int64_t eas_wbxml_decode(const uint8_t *data, size_t len,
                         const uint64_t *valid, size_t npages,
                         uint32_t max_depth, uint32_t max_tokens, uint32_t max_string,
                         uint32_t *tape, size_t tape_cap, size_t *info);

/* Encode a Writer tape: ops are tag << 3 | kind words (a LEAF_OPAQUE word is followed
 * by the blob's length), strs the NUL-terminated UTF-8 strings in order, blobs the
 * opaque data in order. Returns the number of bytes written to out, or a negative error
 * code with *err_index = the index of the op at fault. */
int64_t eas_wbxml_encode(const uint32_t *ops, size_t nops,
                         const uint8_t *strs, size_t strs_len,
                         const uint8_t *blobs, size_t blobs_len,
                         const uint64_t *valid, size_t npages,
                         uint8_t *out, size_t out_cap, size_t *err_index);

/* Adds the CPython glue of _wbxml_py.c (decode to Nodes, the Writer type) to the
 * eas._wbxml module; 0 on success, -1 (with the Python error printed) otherwise. */
int eas_install(void);

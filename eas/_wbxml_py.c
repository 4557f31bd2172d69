/* CPython glue around the WBXML kernels: the tree builder and the Writer in C.
 *
 * The kernels (_wbxml.c) know nothing of Python. Turning a tape into Nodes and recording
 * a Writer's tape are shared by both implementations, and in Python they cost more than
 * the kernels themselves (a Node or a method call is some 200 ns), so the C build does
 * them here with the C API. eas/wbxml/_tape.py (build_tree) and _writer.py (Writer) are
 * the Python twins; the tests compare the trees and the recorded tapes.
 *
 * cffi cannot pass Python objects, so eas_install(), called once through cffi, adds
 * these functions and the Writer type to the eas._wbxml module with the C API.
 */

#include <Python.h>
#include <structmember.h>

#define NPAGES_CAP 32

static PyTypeObject *node_type;                 /* eas.wbxml._node.Node */
static Py_ssize_t off_tag, off_text, off_children; /* its __slots__ */
static PyObject *error_fn, *encode_error_fn;    /* eas.wbxml._errors.error / encode_error */
static PyObject *wbxml_error;                   /* eas.wbxml._errors.WBXMLError */
static PyObject *join_text_fn;                  /* eas.wbxml._tape.join_text */
static PyObject *tag_ints[NPAGES_CAP * 64];     /* the tags as ints, made once */
static uint64_t valid[NPAGES_CAP];
static size_t npages;

#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))

static void raise_error(PyObject *fn, long code, Py_ssize_t where)
{
    PyObject *exc = PyObject_CallFunction(fn, "ln", code, where);
    if (exc) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
}

/* A Node with children [] and the given text (stolen; NULL for None). */
static PyObject *new_node(uint32_t tag, PyObject *text)
{
    PyObject *node, *children;
    if (!text)
        text = Py_NewRef(Py_None);
    node = node_type->tp_alloc(node_type, 0);
    children = PyList_New(0);
    if (!node || !children) {
        Py_XDECREF(node);
        Py_XDECREF(children);
        Py_DECREF(text);
        return NULL;
    }
    SLOT(node, off_tag) = Py_NewRef(tag_ints[(tag >> 8) * 64 + (tag & 63)]);
    SLOT(node, off_text) = text;
    SLOT(node, off_children) = children;
    return node;
}

/* ISO-8859-1 as such; UTF-8, unknown and US-ASCII (a subset) as UTF-8 (_tape.py: CHARSETS). */
static PyObject *decode_text(const uint8_t *p, Py_ssize_t n, uint32_t charset)
{
    if (charset == 4)
        return PyUnicode_DecodeLatin1((const char *)p, n, "surrogateescape");
    return PyUnicode_DecodeUTF8((const char *)p, n, "surrogateescape");
}

/* Append child (stolen) to parent's children. */
static int adopt(PyObject *children, PyObject *child)
{
    if (!child)
        return -1;
    int rc = PyList_Append(children, child);
    Py_DECREF(child);
    return rc;
}

/* Nodes from a decode tape; the kernel guarantees its shape (see build_tree). */
static PyObject *build(const uint8_t *data, const uint32_t *tape, size_t n, uint32_t charset)
{
    PyObject *stack[EAS_WBXML_DEPTH_CAP + 1]; /* open elements, borrowed from their parents */
    PyObject *top = PyList_New(0), *children, *pieces = NULL, *root = NULL;
    size_t depth = 0;
    int pieces_opaque = 0;
    if (!top)
        return NULL;
    children = top;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t code = tape[i], a = tape[i + 1], b = tape[i + 2], tag = code >> 3;
        PyObject *node, *piece;
        switch (code & 7) {
        case K_LEAF_STR:
            node = decode_text(data + a, b, charset);
            if (!node || adopt(children, new_node(tag, node)) < 0)
                goto fail;
            break;
        case K_EMPTY:
            if (adopt(children, new_node(tag, NULL)) < 0)
                goto fail;
            break;
        case K_OPEN:
            node = new_node(tag, NULL);
            if (!node || PyList_Append(children, node) < 0) {
                Py_XDECREF(node);
                goto fail;
            }
            Py_DECREF(node); /* the parent's list keeps it */
            stack[depth++] = node;
            children = SLOT(node, off_children);
            break;
        case K_CLOSE:
            node = stack[--depth];
            if (pieces) { /* rare: several strings, entities or opaque pieces in one element */
                PyObject *text;
                if (pieces_opaque) {
                    PyObject *empty = PyBytes_FromStringAndSize(NULL, 0);
                    text = empty ? PyObject_CallMethod(empty, "join", "O", pieces) : NULL;
                    Py_XDECREF(empty);
                } else {
                    text = PyObject_CallFunction(join_text_fn, "Os", pieces,
                                                 charset == 4 ? "latin-1" : "utf-8");
                }
                Py_CLEAR(pieces);
                pieces_opaque = 0;
                if (!text)
                    goto fail;
                Py_SETREF(SLOT(node, off_text), text);
            }
            children = depth ? SLOT(stack[depth - 1], off_children) : top;
            break;
        case K_LEAF_OPAQUE:
            node = PyBytes_FromStringAndSize((const char *)data + a, b);
            if (!node || adopt(children, new_node(tag, node)) < 0)
                goto fail;
            break;
        default: /* a piece of text: K_STR, K_OPAQUE, K_ENTITY */
            if (!pieces && !(pieces = PyList_New(0)))
                goto fail;
            if ((code & 7) == K_ENTITY) {
                piece = PyUnicode_FromOrdinal((int)a);
            } else { /* string bytes are decoded when the element closes (join_text) */
                piece = PyBytes_FromStringAndSize((const char *)data + a, b);
                pieces_opaque |= (code & 7) == K_OPAQUE;
            }
            if (adopt(pieces, piece) < 0)
                goto fail;
        }
    }
    root = Py_NewRef(PyList_GET_ITEM(top, 0));
fail:
    Py_XDECREF(pieces);
    Py_DECREF(top);
    return root;
}

/* decode(data, max_depth, max_tokens, max_string, max_message_size) -> Node */
static PyObject *py_decode(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    unsigned long lim[4];
    PyObject *result = NULL;
    uint32_t *tape = NULL;
    size_t info[2], records;
    int64_t r;
    (void)self;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "decode() takes 5 arguments");
        return NULL;
    }
    for (int k = 0; k < 4; k++) {
        lim[k] = PyLong_AsUnsignedLong(args[k + 1]);
        if (lim[k] == (unsigned long)-1 && PyErr_Occurred())
            return NULL;
    }
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    size_t len = (size_t)view.len;
    if (len > lim[3]) {
        raise_error(error_fn, E_SIZE, (Py_ssize_t)lim[3]);
        goto done;
    }
    records = len / 8 + 64; /* 1.5x the input; a denser message is decoded again */
    for (;;) {
        tape = PyMem_Malloc(3 * records * sizeof(uint32_t));
        if (!tape) {
            PyErr_NoMemory();
            goto done;
        }
        r = eas_wbxml_decode(view.buf, len, valid, npages, (uint32_t)lim[0], (uint32_t)lim[1], (uint32_t)lim[2],
                             tape, 3 * records, info);
        if (r != -E_TAPE_FULL)
            break;
        PyMem_Free(tape);
        records = (len < lim[1] ? len : lim[1]) + 1;
    }
    if (r < 0)
        raise_error(error_fn, (long)-r, (Py_ssize_t)info[0]);
    else
        result = build(view.buf, tape, (size_t)r, (uint32_t)info[1]);
done:
    PyMem_Free(tape);
    PyBuffer_Release(&view);
    return result;
}

/* ---- Writer ---------------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t len, cap;
} buf_t;

static int buf_put(buf_t *b, const void *src, size_t n)
{
    if (!n)
        return 0;
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n) {
            if (cap > PY_SSIZE_T_MAX / 2) {
                PyErr_NoMemory();
                return -1;
            }
            cap *= 2;
        }
        char *p = PyMem_Realloc(b->p, cap);
        if (!p) {
            PyErr_NoMemory();
            return -1;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
    return 0;
}

typedef struct {
    PyObject_HEAD
    buf_t ops;         /* uint32 words, tag << 3 | kind */
    buf_t strs;        /* UTF-8 strings, each NUL-terminated */
    buf_t blobs;       /* opaque data */
    Py_ssize_t nops;
    Py_ssize_t bad_op; /* index of the first op that is not a 32-bit word, or -1 */
    PyObject *text_error; /* the first text UTF-8 cannot carry, raised by getvalue */
    int has_nul;       /* a text holds NUL, raised by getvalue */
} WriterObject;

static PyTypeObject *writer_type;

static PyObject *writer_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    if (PyTuple_GET_SIZE(args) || (kw && PyDict_GET_SIZE(kw))) {
        PyErr_SetString(PyExc_TypeError, "Writer() takes no arguments");
        return NULL;
    }
    WriterObject *w = (WriterObject *)type->tp_alloc(type, 0);
    if (w)
        w->bad_op = -1;
    return (PyObject *)w;
}

static void writer_dealloc(WriterObject *w)
{
    PyTypeObject *type = Py_TYPE(w);
    PyMem_Free(w->ops.p);
    PyMem_Free(w->strs.p);
    PyMem_Free(w->blobs.p);
    Py_XDECREF(w->text_error);
    type->tp_free(w);
    Py_DECREF(type);
}

/* Record tag << 3 | kind, as Python would compute it; a tag that does not fit makes
 * the op invalid, reported by getvalue with its index like the pure Writer does. */
static int put_op(WriterObject *w, PyObject *tag, uint32_t kind)
{
    int overflow;
    long long t;
    uint32_t word = 0;
    if (!PyLong_Check(tag)) {
        PyErr_Format(PyExc_TypeError, "a tag is an int, not %.100s", Py_TYPE(tag)->tp_name);
        return -1;
    }
    t = PyLong_AsLongLongAndOverflow(tag, &overflow);
    if (t == -1 && PyErr_Occurred())
        return -1;
    if (overflow || t < 0 || t > 0x1FFFFFFF) {
        if (w->bad_op < 0)
            w->bad_op = w->nops;
    } else {
        word = (uint32_t)t << 3 | kind;
    }
    w->nops++;
    return buf_put(&w->ops, &word, sizeof word);
}

static PyObject *writer_tag(WriterObject *w, PyObject *tag)
{
    if (put_op(w, tag, K_OPEN) < 0)
        return NULL;
    return Py_NewRef(w);
}

static PyObject *writer_enter(WriterObject *w, PyObject *unused)
{
    (void)w;
    (void)unused;
    Py_RETURN_NONE;
}

static PyObject *writer_exit(WriterObject *w, PyObject *const *args, Py_ssize_t nargs)
{
    uint32_t word = K_CLOSE;
    (void)args;
    (void)nargs;
    w->nops++;
    if (buf_put(&w->ops, &word, sizeof word) < 0)
        return NULL;
    Py_RETURN_FALSE;
}

static PyObject *writer_empty(WriterObject *w, PyObject *tag)
{
    if (put_op(w, tag, K_EMPTY) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *writer_leaf(WriterObject *w, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *text, *owned = NULL, *encoded = NULL;
    const char *utf8;
    Py_ssize_t n;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "leaf() takes a tag and a text");
        return NULL;
    }
    text = args[1];
    if (!PyUnicode_Check(text)) {
        if (!PyLong_Check(text) || PyBool_Check(text)) {
            PyErr_Format(PyExc_TypeError, "element text must be str or int, not %.100s", Py_TYPE(text)->tp_name);
            return NULL;
        }
        if (!(owned = text = PyObject_Str(text)))
            return NULL;
    }
    if (put_op(w, args[0], K_LEAF_STR) < 0)
        goto fail;
    utf8 = PyUnicode_AsUTF8AndSize(text, &n);
    if (!utf8) { /* lone surrogates: bytes that were not UTF-8 (U+DC80..U+DCFF) or worse */
        PyErr_Clear();
        encoded = PyUnicode_AsEncodedString(text, "utf-8", "surrogateescape");
        if (!encoded) {
            if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
                goto fail;
            if (!w->text_error) {
                PyObject *type, *exc, *tb, *ch, *msg = NULL;
                Py_ssize_t start = 0;
                PyErr_Fetch(&type, &exc, &tb);
                PyErr_NormalizeException(&type, &exc, &tb);
                PyUnicodeEncodeError_GetStart(exc, &start);
                Py_XDECREF(type);
                Py_XDECREF(exc);
                Py_XDECREF(tb);
                ch = PyUnicode_Substring(text, start, start + 1);
                if (ch)
                    msg = PyUnicode_FromFormat("text holds %R, which UTF-8 cannot carry", ch);
                Py_XDECREF(ch);
                if (!msg)
                    goto fail;
                w->text_error = msg;
            } else {
                PyErr_Clear();
            }
            utf8 = "";
            n = 0;
        } else {
            utf8 = PyBytes_AS_STRING(encoded);
            n = PyBytes_GET_SIZE(encoded);
        }
    }
    if (memchr(utf8, 0, (size_t)n))
        w->has_nul = 1;
    if (buf_put(&w->strs, utf8, (size_t)n + 1) < 0) /* with its NUL */
        goto fail;
    Py_XDECREF(encoded);
    Py_XDECREF(owned);
    Py_RETURN_NONE;
fail:
    Py_XDECREF(encoded);
    Py_XDECREF(owned);
    return NULL;
}

static PyObject *writer_opaque(WriterObject *w, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    uint32_t len;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "opaque() takes a tag and bytes");
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if ((size_t)view.len > 0xFFFFFFFFu) {
        PyBuffer_Release(&view);
        PyErr_SetString(wbxml_error, "opaque data longer than 4 GiB");
        return NULL;
    }
    len = (uint32_t)view.len;
    int rc = put_op(w, args[0], K_LEAF_OPAQUE);
    if (rc == 0) {
        w->nops++;
        rc = buf_put(&w->ops, &len, sizeof len);
    }
    if (rc == 0)
        rc = buf_put(&w->blobs, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* The recording's own errors, in the pure Writer's order (_writer.py: Writer._tape). */
static int writer_check(WriterObject *w)
{
    if (w->bad_op >= 0)
        raise_error(encode_error_fn, E_BAD_OP, w->bad_op);
    else if (w->text_error)
        PyErr_SetObject(wbxml_error, w->text_error);
    else if (w->has_nul)
        PyErr_SetString(wbxml_error, "text holds a NUL character, which WBXML strings cannot carry");
    else
        return 0;
    return -1;
}

static PyObject *writer_getvalue(WriterObject *w, PyObject *unused)
{
    size_t index = 0, cap;
    int64_t r;
    PyObject *out;
    (void)unused;
    if (writer_check(w) < 0)
        return NULL;
    cap = 4 + 5 * (size_t)w->nops + w->strs.len + w->blobs.len;
    out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)cap);
    if (!out)
        return NULL;
    r = eas_wbxml_encode((const uint32_t *)w->ops.p, (size_t)w->nops, (const uint8_t *)w->strs.p, w->strs.len,
                         (const uint8_t *)w->blobs.p, w->blobs.len, valid, npages,
                         (uint8_t *)PyBytes_AS_STRING(out), cap, &index);
    if (r < 0) {
        Py_DECREF(out);
        raise_error(encode_error_fn, (long)-r, (Py_ssize_t)index);
        return NULL;
    }
    if (_PyBytes_Resize(&out, (Py_ssize_t)r) < 0)
        return NULL;
    return out;
}

/* (ops, strs, blobs) as getvalue hands them to the kernel: for the differential tests. */
static PyObject *writer_tape(WriterObject *w, PyObject *unused)
{
    PyObject *ops;
    (void)unused;
    if (writer_check(w) < 0 || !(ops = PyList_New(w->nops)))
        return NULL;
    for (Py_ssize_t i = 0; i < w->nops; i++) {
        PyObject *v = PyLong_FromUnsignedLong(((const uint32_t *)w->ops.p)[i]);
        if (!v) {
            Py_DECREF(ops);
            return NULL;
        }
        PyList_SET_ITEM(ops, i, v);
    }
    PyObject *strs = PyBytes_FromStringAndSize(w->strs.p, (Py_ssize_t)w->strs.len);
    PyObject *blobs = PyBytes_FromStringAndSize(w->blobs.p, (Py_ssize_t)w->blobs.len);
    PyObject *tape = strs && blobs ? PyTuple_Pack(3, ops, strs, blobs) : NULL;
    Py_DECREF(ops);
    Py_XDECREF(strs);
    Py_XDECREF(blobs);
    return tape;
}

static PyMethodDef writer_methods[] = {
    {"tag", (PyCFunction)writer_tag, METH_O, "Start an element with children: with w.tag(t): ..."},
    {"leaf", (PyCFunction)(void (*)(void))writer_leaf, METH_FASTCALL, "An element holding a string or int."},
    {"opaque", (PyCFunction)(void (*)(void))writer_opaque, METH_FASTCALL, "An element holding opaque bytes."},
    {"empty", (PyCFunction)writer_empty, METH_O, "An element without content."},
    {"getvalue", (PyCFunction)writer_getvalue, METH_NOARGS, "The document as WBXML 1.3."},
    {"_tape", (PyCFunction)writer_tape, METH_NOARGS, "(ops, strs, blobs) as given to the kernel."},
    {"__enter__", (PyCFunction)writer_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))writer_exit, METH_FASTCALL, "End the element w.tag started."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot writer_slots[] = {
    {Py_tp_new, writer_new},
    {Py_tp_dealloc, writer_dealloc},
    {Py_tp_methods, writer_methods},
    {Py_tp_doc, "The C build's Writer (see eas.wbxml.Writer)."},
    {0, NULL},
};

static PyType_Spec writer_spec = {
    "eas._wbxml.Writer", sizeof(WriterObject), 0, Py_TPFLAGS_DEFAULT, writer_slots,
};

static PyMethodDef module_functions[] = {
    {"decode", (PyCFunction)(void (*)(void))py_decode, METH_FASTCALL,
     "decode(data, max_depth, max_tokens, max_string_length, max_message_size) -> Node"},
    {NULL, NULL, 0, NULL},
};

/* ---- installation ----------------------------------------------------------------- */

static int slot_offset(PyObject *cls, const char *name, Py_ssize_t *off)
{
    PyObject *d = PyObject_GetAttrString(cls, name);
    if (!d)
        return -1;
    int ok = Py_IS_TYPE(d, &PyMemberDescr_Type) && ((PyMemberDescrObject *)d)->d_member->type == T_OBJECT_EX;
    if (ok)
        *off = ((PyMemberDescrObject *)d)->d_member->offset;
    else
        PyErr_Format(PyExc_TypeError, "Node.%s is not a __slots__ member", name);
    Py_DECREF(d);
    return ok ? 0 : -1;
}

static PyObject *import_attr(const char *module, const char *name)
{
    PyObject *m = PyImport_ImportModule(module), *a = NULL;
    if (m) {
        a = PyObject_GetAttrString(m, name);
        Py_DECREF(m);
    }
    return a;
}

static int install(void)
{
    PyObject *node = NULL, *table = NULL, *module = NULL;
    int rc = -1;
    if (node_type)
        return 0;
    if (!(node = import_attr("eas.wbxml._node", "Node")) || !PyType_Check(node))
        goto done;
    if (slot_offset(node, "tag", &off_tag) || slot_offset(node, "text", &off_text) ||
        slot_offset(node, "children", &off_children))
        goto done;
    if (!(error_fn = import_attr("eas.wbxml._errors", "error")) ||
        !(encode_error_fn = import_attr("eas.wbxml._errors", "encode_error")) ||
        !(wbxml_error = import_attr("eas.wbxml._errors", "WBXMLError")) ||
        !(join_text_fn = import_attr("eas.wbxml._tape", "join_text")))
        goto done;
    if (!(table = import_attr("eas.wbxml._tape", "VALID")) || !PyTuple_Check(table) ||
        PyTuple_GET_SIZE(table) > NPAGES_CAP)
        goto done;
    npages = (size_t)PyTuple_GET_SIZE(table);
    for (size_t p = 0; p < npages; p++) {
        valid[p] = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(table, p));
        if (PyErr_Occurred())
            goto done;
    }
    for (size_t t = 0; t < NPAGES_CAP * 64; t++) {
        if (!tag_ints[t] && !(tag_ints[t] = PyLong_FromSize_t((t / 64) << 8 | (t % 64))))
            goto done;
    }
    if (!(writer_type = (PyTypeObject *)PyType_FromSpec(&writer_spec)))
        goto done;
    if (!(module = PyImport_ImportModule("eas._wbxml")) || PyModule_AddFunctions(module, module_functions) < 0 ||
        PyModule_AddObjectRef(module, "Writer", (PyObject *)writer_type) < 0)
        goto done;
    node_type = (PyTypeObject *)Py_NewRef(node);
    rc = 0;
done:
    Py_XDECREF(node);
    Py_XDECREF(table);
    Py_XDECREF(module);
    return rc;
}

int eas_install(void)
{
    PyGILState_STATE gil = PyGILState_Ensure(); /* cffi calls C without the GIL */
    int rc = install();
    if (rc < 0) {
        PyErr_Print();
    }
    PyGILState_Release(gil);
    return rc;
}

/* The two per-sample loops of `gotop top`, compiled (gotop.model._profile_speedups).

Python cannot go below about 1 us per sample in them, and a big heap profile has
10^5-10^6 samples: on the 400k-stack bench profile (bench/profile_top.py) the
Python paths took 0.41 s to decode the samples and 0.17 s for flat/cum, of a
0.8 s run, where `go tool pprof -top` took 5.4 s. Here they take 0.08 s (most
of it making the 800k str objects of the columns) and 0.02 s.

Each function does the common case and nothing else. It returns None for any
input it does not take (malformed, or legal but unusual protobuf), and the
Python path (profile_samples.py, profile_graph.py), which gives the errors,
decides. tests/test_profile.py checks that both paths give the same result on
real, crafted and fuzzed profiles. The build is optional: without a C compiler
gotop runs the Python paths alone.
*/

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SURROGATES_START 0xD800
#define SURROGATES_SIZE 0x800
#define MAX_CODE 0x10FFFF

typedef struct {
    const uint8_t *p, *end;
} Reader;

/* A protobuf varint; 0 on a truncated or over-long one. */
static int read_varint(Reader *r, uint64_t *out) {
    uint64_t value = 0;
    for (int shift = 0; shift < 64 && r->p < r->end; shift += 7) {
        uint8_t b = *r->p++;
        if (shift == 63 && b > 1)
            return 0;
        value |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *out = value;
            return 1;
        }
    }
    return 0;
}

/* A field's tag as upb takes it (at most 5 bytes, at most 32 bits, field number not 0). */
static int read_tag(Reader *r, uint32_t *field, unsigned *wire_type) {
    const uint8_t *start = r->p;
    uint64_t tag;
    if (!read_varint(r, &tag) || r->p - start > 5 || tag > UINT32_MAX || tag >> 3 == 0)
        return 0;
    *field = (uint32_t)(tag >> 3);
    *wire_type = tag & 7;
    return 1;
}

/* The bytes of a length-delimited field, after its tag. */
static int read_span(Reader *r, Reader *span) {
    uint64_t size;
    if (!read_varint(r, &size) || size > (uint64_t)(r->end - r->p))
        return 0;
    span->p = r->p;
    span->end = r->p + size;
    r->p += size;
    return 1;
}

/* Past a field of this wire type (groups are not taken). */
static int skip_field(Reader *r, unsigned wire_type) {
    uint64_t ignored;
    Reader span;
    switch (wire_type) {
    case 0:
        return read_varint(r, &ignored);
    case 1:
    case 5: {
        size_t size = wire_type == 1 ? 8 : 4;
        if ((size_t)(r->end - r->p) < size)
            return 0;
        r->p += size;
        return 1;
    }
    case 2:
        return read_span(r, &span);
    default:
        return 0;
    }
}

/* profile_samples.dense_code: the n-th code from 1, skipping the surrogates. */
static Py_UCS4 dense_code(size_t n) {
    return (Py_UCS4)(n < SURROGATES_START ? n : n + SURROGATES_SIZE);
}

typedef struct {
    void *data;
    size_t size, capacity, item;
} Buffer;

static int buffer_reserve(Buffer *b, size_t more) {
    if (b->size + more <= b->capacity)
        return 1;
    size_t capacity = b->capacity ? b->capacity : 64;
    while (capacity < b->size + more) {
        if (capacity > SIZE_MAX / 2 / b->item)
            return 0;
        capacity *= 2;
    }
    void *data = realloc(b->data, capacity * b->item);
    if (data == NULL)
        return 0;
    b->data = data;
    b->capacity = capacity;
    return 1;
}

/* Distinct label messages, by their bytes: open addressing, hashed by CPython's keyed
   hash of bytes (SipHash), so a hostile profile cannot make the labels collide. */
typedef struct {
    const uint8_t *p;
    size_t size;
    Py_hash_t hash;
    size_t index; /* 0: empty slot; else the label's number from 1 */
} Slot;

typedef struct {
    Slot *slots;
    size_t mask, count;
    PyObject *blobs; /* list of bytes, in order of first appearance */
} LabelSet;

static Py_hash_t bytes_hash(const uint8_t *p, size_t size) {
    return PyHash_GetFuncDef()->hash(p, (Py_ssize_t)size);
}

/* The label's number from 1 (a new one is added); 0 on an error set. */
static size_t label_number(LabelSet *labels, const uint8_t *p, size_t size) {
    if (2 * (labels->count + 1) > labels->mask + 1) {
        size_t new_mask = labels->mask * 2 + 1;
        Slot *slots = calloc(new_mask + 1, sizeof(Slot));
        if (slots == NULL) {
            PyErr_NoMemory();
            return 0;
        }
        for (size_t i = 0; i <= labels->mask; i++) {
            Slot s = labels->slots[i];
            if (!s.index)
                continue;
            size_t j = (size_t)s.hash & new_mask;
            while (slots[j].index)
                j = (j + 1) & new_mask;
            slots[j] = s;
        }
        free(labels->slots);
        labels->slots = slots;
        labels->mask = new_mask;
    }
    Py_hash_t hash = bytes_hash(p, size);
    size_t j = (size_t)hash & labels->mask;
    for (; labels->slots[j].index; j = (j + 1) & labels->mask) {
        Slot s = labels->slots[j];
        if (s.hash == hash && s.size == size && memcmp(s.p, p, size) == 0)
            return s.index;
    }
    PyObject *blob = PyBytes_FromStringAndSize((const char *)p, (Py_ssize_t)size);
    if (blob == NULL || PyList_Append(labels->blobs, blob) < 0) {
        Py_XDECREF(blob);
        return 0;
    }
    Py_DECREF(blob);
    labels->count++;
    labels->slots[j] = (Slot){p, size, hash, labels->count};
    return labels->count;
}

/* What one call of decode_samples builds. */
typedef struct {
    Py_ssize_t max_id, value_count;
    Buffer stack, label_codes, *values; /* the current sample's; values: one column per type */
    int64_t *sample_values;
    LabelSet labels;
    PyObject *stacks, *label_sets;
} Decoder;

/* Ids of one location_id field (packed or not) as codes; 0: not taken. */
static int add_location_ids(Decoder *d, Reader *field) {
    while (field->p < field->end) {
        uint64_t id;
        if (!read_varint(field, &id) || id == 0 || id > (uint64_t)d->max_id || !buffer_reserve(&d->stack, 1))
            return 0;
        ((Py_UCS2 *)d->stack.data)[d->stack.size++] = (Py_UCS2)id;
    }
    return 1;
}

/* One Sample message; -1 on an error set, 0 when not taken, 1 when added. */
static int add_sample(Decoder *d, Reader *sample) {
    Py_ssize_t values = 0;
    d->stack.size = 0;
    d->label_codes.size = 0;
    while (sample->p < sample->end) {
        uint64_t value;
        uint32_t field;
        unsigned wire_type;
        Reader span;
        if (!read_tag(sample, &field, &wire_type))
            return 0;
        if (field == 1 && wire_type == 2) {
            if (!read_span(sample, &span) || !add_location_ids(d, &span))
                return 0;
        } else if (field == 1 && wire_type == 0) {
            Reader one = {sample->p, sample->end};
            if (!read_varint(sample, &value))
                return 0;
            one.end = sample->p;
            if (!add_location_ids(d, &one))
                return 0;
        } else if (field == 2 && (wire_type == 0 || wire_type == 2)) {
            Reader packed = *sample;
            if (wire_type == 2 && !read_span(sample, &packed))
                return 0;
            do {
                if (!read_varint(&packed, &value) || values == d->value_count)
                    return 0;
                d->sample_values[values++] = (int64_t)value;
            } while (wire_type == 2 && packed.p < packed.end);
            if (wire_type == 0)
                sample->p = packed.p;
        } else if (field == 3 && wire_type == 2) {
            if (!read_span(sample, &span))
                return 0;
            size_t number = label_number(&d->labels, span.p, (size_t)(span.end - span.p));
            if (number == 0)
                return -1;
            if (number > MAX_CODE - SURROGATES_SIZE || !buffer_reserve(&d->label_codes, 1))
                return 0;
            ((Py_UCS4 *)d->label_codes.data)[d->label_codes.size++] = dense_code(number);
        } else {
            return 0;
        }
    }
    if (values != d->value_count)
        return 0;
    int nonzero = 0;
    for (Py_ssize_t t = 0; t < values; t++)
        nonzero |= d->sample_values[t] != 0;
    if (!nonzero)
        return 1; /* dropped, as pprof's Merge drops it; its labels are numbered all the same */
    PyObject *stack = PyUnicode_FromKindAndData(PyUnicode_2BYTE_KIND, d->stack.data, (Py_ssize_t)d->stack.size);
    PyObject *label_set =
        PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, d->label_codes.data, (Py_ssize_t)d->label_codes.size);
    int failed = stack == NULL || label_set == NULL || PyList_Append(d->stacks, stack) < 0 ||
                 PyList_Append(d->label_sets, label_set) < 0;
    Py_XDECREF(stack);
    Py_XDECREF(label_set);
    if (failed)
        return -1;
    for (Py_ssize_t t = 0; t < values; t++) {
        if (!buffer_reserve(&d->values[t], 1)) {
            PyErr_NoMemory();
            return -1;
        }
        ((int64_t *)d->values[t].data)[d->values[t].size++] = d->sample_values[t];
    }
    return 1;
}

/* Every Sample (field 2) of a Profile message; -1, 0 or 1 as add_sample. */
static int add_samples(Decoder *d, Reader *profile) {
    while (profile->p < profile->end) {
        uint32_t field;
        unsigned wire_type;
        if (!read_tag(profile, &field, &wire_type))
            return 0;
        if (field != 2) {
            if (!skip_field(profile, wire_type))
                return 0;
            continue;
        }
        Reader sample;
        if (wire_type != 2 || !read_span(profile, &sample))
            return 0;
        int added = add_sample(d, &sample);
        if (added != 1)
            return added;
    }
    return 1;
}

static PyObject *result_of(Decoder *d) {
    PyObject *columns = PyList_New(d->value_count);
    if (columns == NULL)
        return NULL;
    for (Py_ssize_t t = 0; t < d->value_count; t++) {
        PyObject *column = PyBytes_FromStringAndSize(d->values[t].data, (Py_ssize_t)(d->values[t].size * 8));
        if (column == NULL) {
            Py_DECREF(columns);
            return NULL;
        }
        PyList_SET_ITEM(columns, t, column);
    }
    return Py_BuildValue("(OONO)", d->stacks, d->label_sets, columns, d->labels.blobs);
}

PyDoc_STRVAR(decode_samples_doc,
"decode_samples(profile, max_id, value_count) -> (stacks, label_sets, values, label_blobs) | None\n\n"
"The samples of a raw Profile message whose location ids are 1..max_id (max_id < 0x10000;\n"
"code chr(id)), all-zero samples dropped. values: per sample type, the int64s as native bytes.\n"
"label_sets[i]: one code per label, dense_code(n) for the n-th distinct label message, whose\n"
"bytes are label_blobs[n - 1] (labels of dropped samples are numbered too). None when a sample\n"
"is not taken (malformed, or legal but unusual): the Python path decides.");

static PyObject *decode_samples(PyObject *module, PyObject *args) {
    Py_buffer view;
    Py_ssize_t max_id, value_count;
    if (!PyArg_ParseTuple(args, "y*nn", &view, &max_id, &value_count))
        return NULL;
    PyObject *result = NULL;
    Decoder d = {.max_id = max_id, .value_count = value_count};
    d.stack.item = sizeof(Py_UCS2);
    d.label_codes.item = sizeof(Py_UCS4);
    if (max_id < 1 || max_id > 0xFFFF || value_count < 1) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    d.values = calloc((size_t)value_count, sizeof(Buffer));
    d.sample_values = calloc((size_t)value_count, sizeof(int64_t));
    d.labels.mask = 63;
    d.labels.slots = calloc(64, sizeof(Slot));
    if (d.values == NULL || d.sample_values == NULL || d.labels.slots == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t t = 0; t < value_count; t++)
        d.values[t].item = sizeof(int64_t);
    d.stacks = PyList_New(0);
    d.label_sets = PyList_New(0);
    d.labels.blobs = PyList_New(0);
    if (d.stacks == NULL || d.label_sets == NULL || d.labels.blobs == NULL)
        goto done;
    Reader profile = {view.buf, (const uint8_t *)view.buf + view.len};
    int added = add_samples(&d, &profile);
    result = added == 1 ? result_of(&d) : added == 0 ? Py_NewRef(Py_None) : NULL;
done:
    Py_XDECREF(d.stacks);
    Py_XDECREF(d.label_sets);
    Py_XDECREF(d.labels.blobs);
    for (Py_ssize_t t = 0; d.values && t < value_count; t++)
        free(d.values[t].data);
    free(d.values);
    free(d.sample_values);
    free(d.stack.data);
    free(d.label_codes.data);
    free(d.labels.slots);
    PyBuffer_Release(&view);
    return result;
}

static PyObject *int64_list(const int64_t *values, size_t count) {
    PyObject *list = PyList_New((Py_ssize_t)count);
    for (size_t i = 0; list != NULL && i < count; i++) {
        PyObject *value = PyLong_FromLongLong(values[i]);
        if (value == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, value);
    }
    return list;
}

PyDoc_STRVAR(node_costs_doc,
"node_costs(stacks, weights, first_node, nodes, node_count) -> (cum, flat) | None\n\n"
"Per node, the sum of the weights of the samples whose stack holds it (once per sample)\n"
"and of those whose leaf location's first node it is. The nodes of the location with code c\n"
"are nodes[first_node[c]:first_node[c + 1]]; weights and the node arrays are int64 and\n"
"uint32 buffers. None when a sum overflows int64, a code has no nodes or is beyond the\n"
"table, a node is beyond node_count, or a stack is not a str.");

static PyObject *node_costs(PyObject *module, PyObject *args) {
    PyObject *stacks;
    Py_buffer weights, first_node, nodes;
    Py_ssize_t node_count;
    if (!PyArg_ParseTuple(args, "O!y*y*y*n", &PyTuple_Type, &stacks, &weights, &first_node, &nodes, &node_count))
        return NULL;
    PyObject *result = NULL;
    int64_t *sums = NULL;
    Py_ssize_t *last_sample = NULL;
    Py_ssize_t sample_count = PyTuple_GET_SIZE(stacks);
    size_t code_count = (size_t)first_node.len / sizeof(uint32_t), node_entries = (size_t)nodes.len / sizeof(uint32_t);
    if ((size_t)weights.len != (size_t)sample_count * sizeof(int64_t) || code_count == 0 || node_count < 0 ||
        (size_t)node_count > PY_SSIZE_T_MAX / 2 / sizeof(int64_t) || weights.itemsize != sizeof(int64_t) ||
        first_node.itemsize != sizeof(uint32_t) || nodes.itemsize != sizeof(uint32_t) ||
        /* an empty array's buffer is a static byte: aligned or not, nothing is read from it */
        (weights.len && (uintptr_t)weights.buf % _Alignof(int64_t)) ||
        (uintptr_t)first_node.buf % _Alignof(uint32_t) || (nodes.len && (uintptr_t)nodes.buf % _Alignof(uint32_t))) {
        PyErr_SetString(PyExc_ValueError, "node_costs: arrays of the wrong size, type or alignment");
        goto done;
    }
    sums = calloc(2 * (size_t)node_count + 1, sizeof(int64_t));
    last_sample = malloc(((size_t)node_count + 1) * sizeof(Py_ssize_t));
    if (sums == NULL || last_sample == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    int64_t *cum = sums, *flat = sums + node_count;
    const int64_t *weight = weights.buf;
    const uint32_t *first = first_node.buf, *node_of = nodes.buf;
    for (Py_ssize_t n = 0; n < node_count; n++)
        last_sample[n] = -1;
    for (Py_ssize_t i = 0; i < sample_count; i++) {
        int64_t w = weight[i];
        PyObject *stack = PyTuple_GET_ITEM(stacks, i);
        if (!PyUnicode_Check(stack))
            goto decline;
#if PY_VERSION_HEX < 0x030C0000
        if (PyUnicode_READY(stack) < 0)
            goto done;
#endif
        if (w == 0)
            continue;
        int kind = PyUnicode_KIND(stack);
        const void *data = PyUnicode_DATA(stack);
        Py_ssize_t frames = PyUnicode_GET_LENGTH(stack);
        for (Py_ssize_t f = 0; f < frames; f++) {
            Py_UCS4 code = PyUnicode_READ(kind, data, f);
            if ((size_t)code + 1 >= code_count || first[code] >= first[code + 1] || first[code + 1] > node_entries)
                goto decline;
            for (uint32_t k = first[code]; k < first[code + 1]; k++) {
                uint32_t n = node_of[k];
                if (n >= (size_t)node_count)
                    goto decline;
                if (last_sample[n] == i)
                    continue;
                last_sample[n] = i;
                if (__builtin_add_overflow(cum[n], w, &cum[n]))
                    goto decline;
            }
            if (f == 0 && __builtin_add_overflow(flat[node_of[first[code]]], w, &flat[node_of[first[code]]]))
                goto decline;
        }
    }
    PyObject *cum_list = int64_list(cum, (size_t)node_count);
    PyObject *flat_list = cum_list != NULL ? int64_list(flat, (size_t)node_count) : NULL;
    if (flat_list != NULL)
        result = PyTuple_Pack(2, cum_list, flat_list);
    Py_XDECREF(cum_list);
    Py_XDECREF(flat_list);
    goto done;
decline: /* a sum beyond int64, or stacks and tables that do not fit: the Python path decides */
    result = Py_NewRef(Py_None);
done:
    free(sums);
    free(last_sample);
    PyBuffer_Release(&weights);
    PyBuffer_Release(&first_node);
    PyBuffer_Release(&nodes);
    return result;
}

static PyMethodDef methods[] = {
    {"decode_samples", decode_samples, METH_VARARGS, decode_samples_doc},
    {"node_costs", node_costs, METH_VARARGS, node_costs_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_profile_speedups", "The per-sample loops of profile decoding and flat/cum, in C.", -1,
    methods,
};

PyMODINIT_FUNC PyInit__profile_speedups(void) { return PyModule_Create(&module); }

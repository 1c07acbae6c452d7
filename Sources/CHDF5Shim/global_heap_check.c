// Checks the global-heap objects behind a variable-length string attribute before
// H5Aread follows them.
//
// A variable-length string attribute stores, for each element, a heap ID: the string's
// length (4 bytes), the address of a global heap collection ("GCOL") and the index of
// the object in that collection (4 bytes). H5Aread loads the collection into HDF5's cache
// and copies the object out. HDF5 1.10 trusts the collection's header and the heap ID:
// a damaged collection (an object header whose size runs past the collection, a free-space
// object of size 0, a collection size larger than the file) or a heap ID naming an object
// that is not there makes it copy from wild memory or loop forever. No HDF5 call validates
// a collection, so csm does it here, from the file's bytes, with every rule HDF5 relies
// on when it parses one (H5HGcache.c): signature, version 1, a size of at least 4096 bytes
// inside the file, objects that tile the collection exactly, unique indices, and the
// named object present with no more bytes than the heap ID's length.
//
// The heap IDs themselves come from H5Aread with a conversion path csm registers from
// variable-length strings to a 16-byte opaque type: HDF5 hands the attribute's stored
// bytes to the conversion, which leaves them as they are, so nothing touches the heap.

#include "CHDF5Shim.h"

#include <hdf5/serial/hdf5.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CSM_HEAP_ID_TAG "csm:global-heap-id"
#define GCOL_MIN_SIZE 4096u

static herr_t csm_keep_heap_ids(hid_t src, hid_t dst, H5T_cdata_t *cdata, size_t count,
                                size_t buffer_stride, size_t background_stride, void *buffer,
                                void *background, hid_t transfer) {
    (void)count; (void)buffer_stride; (void)background_stride; (void)buffer; (void)background;
    (void)transfer;
    switch (cdata->command) {
    case H5T_CONV_INIT: {
        if (H5Tget_class(src) != H5T_STRING || H5Tis_variable_str(src) <= 0) return -1;
        if (H5Tget_class(dst) != H5T_OPAQUE) return -1;
        char *tag = H5Tget_tag(dst);
        int ours = tag != NULL && strcmp(tag, CSM_HEAP_ID_TAG) == 0;
        if (tag) H5free_memory(tag);
        if (!ours || H5Tget_size(src) != H5Tget_size(dst)) return -1;
        cdata->need_bkg = H5T_BKG_NO;
        return 0;
    }
    case H5T_CONV_CONV:  // the stored heap IDs are the result: same size, same bytes
    case H5T_CONV_FREE:
        return 0;
    default:
        return -1;
    }
}

static int csm_heap_id_path_registered = -1;

static void csm_register_heap_id_path(void) {
    hid_t string = H5Tcopy(H5T_C_S1);
    hid_t opaque = H5Tcreate(H5T_OPAQUE, 16);
    if (string >= 0 && opaque >= 0 && H5Tset_size(string, H5T_VARIABLE) >= 0 &&
        H5Tset_tag(opaque, CSM_HEAP_ID_TAG) >= 0 &&
        H5Tregister(H5T_PERS_SOFT, "csm_keep_heap_ids", string, opaque, csm_keep_heap_ids) >= 0) {
        csm_heap_id_path_registered = 0;
    }
    if (string >= 0) H5Tclose(string);
    if (opaque >= 0) H5Tclose(opaque);
}

static int fail(char *problem, size_t size, const char *format, ...) {
    if (size > 0) {
        va_list arguments;
        va_start(arguments, format);
        vsnprintf(problem, size, format, arguments);
        va_end(arguments);
    }
    return -1;
}

static uint64_t decode(const uint8_t *bytes, size_t width) {
    uint64_t value = 0;
    for (size_t i = width; i > 0; i--) value = (value << 8) | bytes[i - 1];
    return value;
}

typedef struct {
    int fd;
    uint64_t file_size;
    uint64_t base;          // the file offset HDF5 addresses count from (the user block)
    size_t address_width;   // bytes of an address (sizeof_addr)
    size_t length_width;    // bytes of a length (sizeof_size)
} csm_heap_file;

/// Checks the collection at `address` the way HDF5 parses it and that object `index`
/// is in it with at most `length` bytes.
static int check_object(const csm_heap_file *file, uint64_t address, uint32_t index, uint32_t length,
                        char *problem, size_t size) {
    const size_t header = 8 + file->length_width;        // "GCOL", version, 3 reserved, size
    const size_t object_header = 8 + file->length_width; // index, references, reserved, size
    if (address > file->file_size || file->base > file->file_size - address ||
        file->file_size - file->base - address < header) {
        return fail(problem, size, "names a global heap at %llu, outside the file",
                    (unsigned long long)address);
    }
    const uint64_t offset = file->base + address;
    uint8_t head[16];
    if (pread(file->fd, head, header, (off_t)offset) != (ssize_t)header) {
        return fail(problem, size, "cannot read the global heap at %llu", (unsigned long long)address);
    }
    if (memcmp(head, "GCOL", 4) != 0 || head[4] != 1) {
        return fail(problem, size, "names %llu, which is not a global heap collection",
                    (unsigned long long)address);
    }
    const uint64_t collection_size = decode(head + 8, file->length_width);
    if (collection_size < GCOL_MIN_SIZE || collection_size > file->file_size - offset) {
        return fail(problem, size, "global heap at %llu is damaged: size %llu does not fit the file",
                    (unsigned long long)address, (unsigned long long)collection_size);
    }
    uint8_t *chunk = malloc((size_t)collection_size);
    if (chunk == NULL) return fail(problem, size, "out of memory reading the global heap");
    if (pread(file->fd, chunk, (size_t)collection_size, (off_t)offset) != (ssize_t)collection_size) {
        free(chunk);
        return fail(problem, size, "cannot read the global heap at %llu", (unsigned long long)address);
    }
    // Objects tile the collection: [index u16][references u16][reserved u32][size][data, 8-aligned].
    // Index 0 is free space whose size counts its own header; a tail shorter than an object
    // header is free space without one.
    uint8_t seen[65536 / 8];
    memset(seen, 0, sizeof seen);
    int found = 0;
    uint64_t found_size = 0;
    uint64_t at = header;
    while (at < collection_size) {
        if (collection_size - at < object_header) break;
        const uint8_t *p = chunk + at;
        const unsigned object = (unsigned)decode(p, 2);
        const uint64_t object_size = decode(p + 8, file->length_width);
        uint64_t need;
        if (object > 0) {
            if (object_size > collection_size) goto damaged;
            need = object_header + ((object_size + 7) & ~(uint64_t)7);
            if (seen[object / 8] & (1u << (object % 8))) goto damaged;
            seen[object / 8] |= (uint8_t)(1u << (object % 8));
            if (object == index) {
                found = 1;
                found_size = object_size;
            }
        } else {
            need = object_size;
            if (need < object_header) goto damaged;
        }
        if (need > collection_size - at) goto damaged;
        at += need;
    }
    free(chunk);
    if (!found) {
        return fail(problem, size, "names object %u of the global heap at %llu, which is not there",
                    index, (unsigned long long)address);
    }
    if (found_size > length) {
        return fail(problem, size, "global heap object %u at %llu holds %llu bytes for a %u-byte string",
                    index, (unsigned long long)address, (unsigned long long)found_size, length);
    }
    return 0;
damaged:
    free(chunk);
    return fail(problem, size, "global heap at %llu is damaged: its objects do not tile it",
                (unsigned long long)address);
}

int csm_h5a_check_variable_strings(int64_t attribute, char *problem, size_t size) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, csm_register_heap_id_path);
    if (size > 0) problem[0] = '\0';
    if (csm_heap_id_path_registered != 0) return fail(problem, size, "cannot register the heap-ID reader");

    csm_heap_file file = {.fd = -1};
    hsize_t userblock = 0;
    hid_t owner = H5Iget_file_id(attribute);
    if (owner < 0) return fail(problem, size, "cannot find the attribute's file");
    hid_t creation = H5Fget_create_plist(owner);
    H5Fclose(owner);
    if (creation < 0) return fail(problem, size, "cannot read the file's creation properties");
    herr_t status = H5Pget_sizes(creation, &file.address_width, &file.length_width);
    if (status >= 0) status = H5Pget_userblock(creation, &userblock);
    H5Pclose(creation);
    if (status < 0) return fail(problem, size, "cannot read the file's address sizes");
    if ((file.address_width != 4 && file.address_width != 8) ||
        (file.length_width != 4 && file.length_width != 8)) {
        return fail(problem, size, "uses %zu-byte addresses and %zu-byte lengths, which csm does not read",
                    file.address_width, file.length_width);
    }
    file.base = userblock;

    hid_t space = H5Aget_space(attribute);
    if (space < 0) return fail(problem, size, "cannot read the attribute's shape");
    const hssize_t count = H5Sget_simple_extent_npoints(space);
    H5Sclose(space);
    if (count < 0 || count > 4096) return fail(problem, size, "holds an implausible number of strings");
    if (count == 0) return 0;

    const size_t id_size = 4 + file.address_width + 4;
    hid_t ids = H5Tcreate(H5T_OPAQUE, id_size);
    if (ids < 0 || H5Tset_tag(ids, CSM_HEAP_ID_TAG) < 0) {
        if (ids >= 0) H5Tclose(ids);
        return fail(problem, size, "cannot make the heap-ID type");
    }
    uint8_t *stored = calloc((size_t)count, id_size);
    if (stored == NULL) {
        H5Tclose(ids);
        return fail(problem, size, "out of memory");
    }
    status = H5Aread(attribute, ids, stored);
    H5Tclose(ids);
    if (status < 0) {
        free(stored);
        return fail(problem, size, "cannot read the attribute's heap IDs");
    }

    char name[4096];
    const ssize_t name_length = H5Fget_name(attribute, name, sizeof name);
    struct stat info;
    if (name_length <= 0 || (size_t)name_length >= sizeof name ||
        (file.fd = open(name, O_RDONLY | O_CLOEXEC)) < 0 || fstat(file.fd, &info) != 0) {
        if (file.fd >= 0) close(file.fd);
        free(stored);
        return fail(problem, size, "cannot reopen the file to check its global heap");
    }
    file.file_size = (uint64_t)info.st_size;

    int result = 0;
    for (hssize_t i = 0; i < count && result == 0; i++) {
        const uint8_t *id = stored + (size_t)i * id_size;
        const uint32_t length = (uint32_t)decode(id, 4);
        const uint64_t address = decode(id + 4, file.address_width);
        const uint32_t index = (uint32_t)decode(id + 4 + file.address_width, 4);
        if (address == 0) continue;  // a null string: HDF5 reads nothing
        if (index == 0 || index > 0xffff) {
            result = fail(problem, size, "names global heap object %u, which cannot exist", index);
        } else {
            result = check_object(&file, address, index, length, problem, size);
        }
    }
    close(file.fd);
    free(stored);
    return result;
}

#include "CHDF5Shim.h"

#include <hdf5/serial/hdf5.h>
#include <string.h>

int64_t csm_h5p_default(void) { return H5P_DEFAULT; }
int64_t csm_h5s_all(void) { return H5S_ALL; }

int64_t csm_h5p_file_create(void) { return H5P_FILE_CREATE; }
int64_t csm_h5p_file_access(void) { return H5P_FILE_ACCESS; }
int64_t csm_h5p_dataset_create(void) { return H5P_DATASET_CREATE; }

unsigned csm_h5f_acc_trunc(void) { return H5F_ACC_TRUNC; }
unsigned csm_h5f_acc_rdonly(void) { return H5F_ACC_RDONLY; }

int64_t csm_h5t_native_uint8(void) { return H5T_NATIVE_UINT8; }
int64_t csm_h5t_native_int32(void) { return H5T_NATIVE_INT32; }
int64_t csm_h5t_native_int64(void) { return H5T_NATIVE_INT64; }
int64_t csm_h5t_native_float(void) { return H5T_NATIVE_FLOAT; }
int64_t csm_h5t_native_double(void) { return H5T_NATIVE_DOUBLE; }

int64_t csm_h5t_std_u8le(void) { return H5T_STD_U8LE; }
int64_t csm_h5t_std_i32le(void) { return H5T_STD_I32LE; }
int64_t csm_h5t_std_i64le(void) { return H5T_STD_I64LE; }
int64_t csm_h5t_ieee_f32le(void) { return H5T_IEEE_F32LE; }
int64_t csm_h5t_ieee_f64le(void) { return H5T_IEEE_F64LE; }

int64_t csm_h5t_create_utf8_string(void) {
    hid_t type = H5Tcopy(H5T_C_S1);
    if (type < 0) return type;
    if (H5Tset_size(type, H5T_VARIABLE) < 0 || H5Tset_cset(type, H5T_CSET_UTF8) < 0) {
        H5Tclose(type);
        return -1;
    }
    return type;
}

int csm_h5_silence_errors(void) {
    if (H5open() < 0) return -1;
    return H5Eset_auto2(H5E_DEFAULT, NULL, NULL) < 0 ? -1 : 0;
}

typedef struct {
    char *buffer;
    size_t size;
    int count;
} csm_error_sink;

// Keeps the first message of an upward walk: the innermost, most specific one.
static herr_t csm_collect_error(unsigned n, const H5E_error2_t *error, void *data) {
    (void)n;
    csm_error_sink *sink = (csm_error_sink *)data;
    const char *text = (error->desc && error->desc[0]) ? error->desc : error->func_name;
    if (sink->count == 0 && text && sink->size > 0) {
        strncpy(sink->buffer, text, sink->size - 1);
        sink->buffer[sink->size - 1] = '\0';
    }
    sink->count += 1;
    return 0;
}

int csm_h5_take_error_message(char *buffer, size_t size) {
    csm_error_sink sink = {buffer, size, 0};
    if (size > 0) buffer[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, csm_collect_error, &sink);
    H5Eclear2(H5E_DEFAULT);
    return sink.count;
}

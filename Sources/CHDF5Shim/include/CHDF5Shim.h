#ifndef CSM_CHDF5_SHIM_H
#define CSM_CHDF5_SHIM_H

// HDF5 names that Swift cannot import because they are macros (H5P_DEFAULT, the
// H5T_NATIVE_* type ids, H5F_ACC_* flags, ...), as functions, plus error-stack helpers.
// Identifiers are HDF5's hid_t (int64_t in HDF5 1.10 and later).

#include <stddef.h>
#include <stdint.h>

/// H5P_DEFAULT, H5S_ALL and H5E_DEFAULT (all 0).
int64_t csm_h5p_default(void);
int64_t csm_h5s_all(void);

/// Property list classes, for H5Pcreate.
int64_t csm_h5p_file_create(void);
int64_t csm_h5p_file_access(void);
int64_t csm_h5p_dataset_create(void);

/// File open flags.
unsigned csm_h5f_acc_trunc(void);
unsigned csm_h5f_acc_rdonly(void);

/// Native (in-memory) types.
int64_t csm_h5t_native_uint8(void);
int64_t csm_h5t_native_int32(void);
int64_t csm_h5t_native_int64(void);
int64_t csm_h5t_native_float(void);
int64_t csm_h5t_native_double(void);

/// Little-endian file types.
int64_t csm_h5t_std_u8le(void);
int64_t csm_h5t_std_i32le(void);
int64_t csm_h5t_std_i64le(void);
int64_t csm_h5t_ieee_f32le(void);
int64_t csm_h5t_ieee_f64le(void);

/// A new variable-length UTF-8 string type (close it with H5Tclose).
int64_t csm_h5t_create_utf8_string(void);

/// Initialises the library and turns off HDF5's automatic printing of errors to stderr
/// for the calling thread. Returns a negative value on failure.
int csm_h5_silence_errors(void);

/// Writes the innermost (most specific) message of the default error stack into `buffer`
/// (NUL-terminated, at most `size` bytes), then clears the stack. Returns the number of
/// messages the stack held.
int csm_h5_take_error_message(char *buffer, size_t size);

/// Checks, from the file's bytes, every global-heap object that the variable-length string
/// attribute `attribute` refers to, so that H5Aread cannot be led by a damaged heap into
/// reading wild memory or looping (HDF5 1.10 does not check them). Returns 0 when H5Aread
/// may follow them; otherwise -1 with a one-line description in `problem` (NUL-terminated,
/// at most `size` bytes).
int csm_h5a_check_variable_strings(int64_t attribute, char *problem, size_t size);

#endif

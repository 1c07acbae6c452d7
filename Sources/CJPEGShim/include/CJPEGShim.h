// libjpeg reports errors by longjmp, which Swift cannot catch: these wrappers keep the
// setjmp on the C side and hand csm a status and a message.
#ifndef CSM_JPEG_SHIM_H
#define CSM_JPEG_SHIM_H

#include <stddef.h>

/// Decodes the JPEG file `path` to 8-bit pixels, HWC. `want_channels`: 1 = grey, 3 = RGB,
/// 0 = grey if the file is grey, else RGB. On success returns 0 and sets `*pixels` (free it
/// with csm_jpeg_free), `*width`, `*height`, `*channels`; on failure returns -1 and writes a
/// message to `error`.
int csm_jpeg_read(const char *path, int want_channels, unsigned char **pixels, int *width, int *height,
                  int *channels, char *error, size_t error_size);

/// Frees pixels returned by csm_jpeg_read.
void csm_jpeg_free(unsigned char *pixels);

/// Encodes 8-bit HWC pixels (1 or 3 channels) as a baseline JPEG file. Returns 0 or -1
/// with a message in `error`.
int csm_jpeg_write(const char *path, const unsigned char *pixels, int width, int height, int channels, int quality,
                   char *error, size_t error_size);

#endif

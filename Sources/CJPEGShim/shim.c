#include "CJPEGShim.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

struct csm_error {
    struct jpeg_error_mgr manager;
    jmp_buf jump;
};

static void csm_error_exit(j_common_ptr info) {
    struct csm_error *error = (struct csm_error *)info->err;
    longjmp(error->jump, 1);
}

static void csm_message(j_common_ptr info, char *error, size_t error_size) {
    char buffer[JMSG_LENGTH_MAX];
    info->err->format_message(info, buffer);
    snprintf(error, error_size, "%s", buffer);
}

int csm_jpeg_read(const char *path, int want_channels, unsigned char **pixels, int *width, int *height,
                  int *channels, char *error, size_t error_size) {
    *pixels = NULL;
    FILE *file = fopen(path, "rb");
    if (!file) {
        snprintf(error, error_size, "cannot open");
        return -1;
    }
    struct jpeg_decompress_struct info;
    struct csm_error handler;
    unsigned char *volatile out = NULL;
    info.err = jpeg_std_error(&handler.manager);
    handler.manager.error_exit = csm_error_exit;
    if (setjmp(handler.jump)) {
        csm_message((j_common_ptr)&info, error, error_size);
        jpeg_destroy_decompress(&info);
        fclose(file);
        free(out);
        return -1;
    }
    jpeg_create_decompress(&info);
    jpeg_stdio_src(&info, file);
    jpeg_read_header(&info, TRUE);
    int grey = want_channels == 1 || (want_channels == 0 && info.num_components == 1);
    info.out_color_space = grey ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&info);
    size_t stride = (size_t)info.output_width * info.output_components;
    out = malloc(stride * info.output_height);
    if (!out) {
        snprintf(error, error_size, "out of memory");
        jpeg_destroy_decompress(&info);
        fclose(file);
        return -1;
    }
    while (info.output_scanline < info.output_height) {
        JSAMPROW row = out + stride * info.output_scanline;
        jpeg_read_scanlines(&info, &row, 1);
    }
    jpeg_finish_decompress(&info);
    *width = (int)info.output_width;
    *height = (int)info.output_height;
    *channels = info.output_components;
    *pixels = out;
    jpeg_destroy_decompress(&info);
    fclose(file);
    return 0;
}

void csm_jpeg_free(unsigned char *pixels) { free(pixels); }

int csm_jpeg_write(const char *path, const unsigned char *pixels, int width, int height, int channels, int quality,
                   char *error, size_t error_size) {
    if (channels != 1 && channels != 3) {
        snprintf(error, error_size, "JPEG needs 1 or 3 channels, got %d", channels);
        return -1;
    }
    FILE *file = fopen(path, "wb");
    if (!file) {
        snprintf(error, error_size, "cannot create");
        return -1;
    }
    struct jpeg_compress_struct info;
    struct csm_error handler;
    info.err = jpeg_std_error(&handler.manager);
    handler.manager.error_exit = csm_error_exit;
    if (setjmp(handler.jump)) {
        csm_message((j_common_ptr)&info, error, error_size);
        jpeg_destroy_compress(&info);
        fclose(file);
        return -1;
    }
    jpeg_create_compress(&info);
    jpeg_stdio_dest(&info, file);
    info.image_width = (JDIMENSION)width;
    info.image_height = (JDIMENSION)height;
    info.input_components = channels;
    info.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&info);
    jpeg_set_quality(&info, quality, TRUE);
    jpeg_start_compress(&info, TRUE);
    while (info.next_scanline < info.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)info.next_scanline * width * channels);
        jpeg_write_scanlines(&info, &row, 1);
    }
    jpeg_finish_compress(&info);
    jpeg_destroy_compress(&info);
    if (fclose(file) != 0) {
        snprintf(error, error_size, "cannot finish writing");
        return -1;
    }
    return 0;
}

// Debian's libpng (libpng-dev).
#include <png.h>

// Debian's serial HDF5 C library (libhdf5-dev): headers under /usr/include/hdf5/serial,
// library libhdf5_serial.
#include <hdf5/serial/hdf5.h>

// zlib, for reading the gzip-compressed IDX files of Fashion-MNIST. Only DSGCore imports this module.
#include <zlib.h>

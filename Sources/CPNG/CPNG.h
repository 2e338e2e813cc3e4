// libpng, for decoding the PNG images of `dsg evaluate --images` (its simplified read API, which handles its own
// errors and never longjmps into Swift). Only DSGCore imports this module.
#include <png.h>

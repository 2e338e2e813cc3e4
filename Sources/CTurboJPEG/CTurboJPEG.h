// libjpeg-turbo's TurboJPEG API, for decoding the JPEG images of `dsg evaluate --images`. TurboJPEG returns error
// codes instead of calling libjpeg's error_exit (which would exit or longjmp). Only DSGCore imports this module.
#include <turbojpeg.h>

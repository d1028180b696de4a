/* The C header as a Swift-importable module, so the C API's implementation uses the exact
 * declared types. Nothing is defined here. */
#include "hulynet.h"

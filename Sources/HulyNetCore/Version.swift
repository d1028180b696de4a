/// hulynet's version, as the VERSION file at the top of the checkout says (the one source:
/// scripts/check-version.sh fails when this copy, hulynet.h's macros or the Python package's
/// differ from it).
public let hulynetVersion = "0.2.0"

# Debian packages of the install tree, made by CPack from the install components:
#
#   cmake --build build && (cd build && cpack -G DEB)
#
#   libhulynet0     (component Runtime)      /usr/lib/libhulynet.so.0.2.0, its SONAME link libhulynet.so.0
#                                            and /usr/bin/hulynet-server; Depends from dpkg-shlibdeps
#                                            (libzmq5, libc6, libstdc++6, libgcc-s1)
#   libhulynet-dev  (component Development)  hulynet.h, hulynet.hpp, hulynet.pc, the CMake package and
#                                            the libhulynet.so link; Depends libhulynet0 (= version), libzmq3-dev
#
# Both are stripped. Making them needs dpkg-dev (dpkg-shlibdeps) and file; scripts/deb-test.sh
# installs them, builds tests/consumer against them and removes them.

set(CPACK_PACKAGE_NAME "hulynet")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "The Huly virtual network (coordinator, agents, clients) over ZeroMQ, as a C library")
set(CPACK_PACKAGE_HOMEPAGE_URL "https://github.com/hcengineering/huly.net")
set(HULYNET_PACKAGE_CONTACT "hulynet maintainers" CACHE STRING "The Maintainer field of the Debian packages")
set(CPACK_PACKAGE_CONTACT "${HULYNET_PACKAGE_CONTACT}")

# Files under /usr, installed with DESTDIR so that the install-time hulynet.pc names /usr, not the
# staging directory.
set(CPACK_INSTALL_PREFIX "/usr")
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
set(CPACK_SET_DESTDIR ON)
set(CPACK_STRIP_FILES ON)

set(CPACK_GENERATOR "DEB")
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL Runtime Development)
set(CPACK_COMPONENT_DEVELOPMENT_DEPENDS Runtime)
set(CPACK_DEBIAN_ENABLE_COMPONENT_DEPENDS ON)   # libhulynet-dev: Depends libhulynet0 (= version)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)          # <name>_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME "libhulynet${HULYNET_SOVERSION}")
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION "libs")
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)   # libhulynet0: a shlibs file, for packages built on it
set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_NAME "libhulynet-dev")
set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_SECTION "libdevel")
# hulynet.pc says Requires.private: libzmq, which pkg-config resolves even for --cflags.
set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_DEPENDS "libzmq3-dev")

include(CPack)

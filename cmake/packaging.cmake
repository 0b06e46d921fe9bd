# SPDX-License-Identifier: Apache-2.0
# Debian packages with CPack (`cpack -G DEB` in the build directory, after the build):
#   ckpt_<version>_<arch>.deb         the command, its man pages and shell completions (component cli)
#   libckpt-dev_<version>_<arch>.deb  libckpt.a, the headers, the CMake package, ckpt.pc (component dev)
# Two packages, as Debian splits a tool from its development files: a machine that only runs
# `ckpt` gets no headers, and the -dev package brings the -dev packages it needs to link
# (libfmt-dev, libssl-dev). libcurl is loaded at run time for object-store roots (dlopen), which
# dpkg-shlibdeps cannot see: the command depends on it by name, the library recommends it.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME ckpt)
set(CPACK_PACKAGE_VENDOR "The ckpt developers")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
# The Maintainer field: whoever publishes the packages sets their address.
set(CKPT_PACKAGE_CONTACT "The ckpt developers <ckpt@example.org>" CACHE STRING
    "Maintainer of the Debian packages (Name <address>)")
set(CPACK_PACKAGE_CONTACT "${CKPT_PACKAGE_CONTACT}")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_INSTALL_PREFIX /usr)
# Install with DESTDIR under the staging directory and the real prefix, so that what is computed
# from the prefix at install time (ckpt.pc, where the shells look) says /usr.
set(CPACK_SET_DESTDIR ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL cli dev)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)

set(CPACK_DEBIAN_CLI_PACKAGE_NAME ckpt)
set(CPACK_DEBIAN_CLI_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_CLI_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_CLI_PACKAGE_DEPENDS "libcurl4 (>= 7.75.0)")
# The first line is the synopsis, the rest the long description: each package has its own, so
# no common summary is prepended to them.
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "")
set(CPACK_DEBIAN_CLI_DESCRIPTION "atomic, verifiable checkpoints for training jobs
ckpt commits a set of files (weights, optimizer state, RNG state) as one
checkpoint, atomically, with a SHA-256 manifest; answers latest and best in
O(1); verifies integrity; applies retention safely beside a running job; and
hands back verified paths. Sharded saves from many writers, JSON output.")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME libckpt-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "libfmt-dev, libssl-dev")
set(CPACK_DEBIAN_DEV_PACKAGE_RECOMMENDS "libcurl4 (>= 7.75.0)")
set(CPACK_DEBIAN_DEV_DESCRIPTION "C++ library of ckpt, atomic verifiable checkpoints
The static library behind the ckpt command, its C++17 headers, a CMake
package (find_package(ckpt CONFIG) gives ckpt::ckpt) and a pkg-config file.")

# Each package's copyright (the license) and changelog (changelog.gz: a native package, whose
# version is ckpt's own), where Debian policy wants them.
set(ckpt_changelog ${PROJECT_BINARY_DIR}/packaging/changelog.Debian)
string(TIMESTAMP ckpt_changelog_date "%a, %d %b %Y %H:%M:%S +0000" UTC)
foreach(component IN ITEMS cli dev)
  string(TOUPPER ${component} upper)
  set(pkg ${CPACK_DEBIAN_${upper}_PACKAGE_NAME})
  file(WRITE ${ckpt_changelog}.${pkg}
       "${pkg} (${PROJECT_VERSION}) unstable; urgency=medium\n\n"
       "  * Release ${PROJECT_VERSION}; what changed is in CHANGELOG.md of the source.\n\n"
       " -- ${CPACK_PACKAGE_CONTACT}  ${ckpt_changelog_date}\n")
  add_custom_command(OUTPUT ${ckpt_changelog}.${pkg}.gz
                     COMMAND gzip -9nkf ${ckpt_changelog}.${pkg}
                     DEPENDS ${ckpt_changelog}.${pkg})
  add_custom_target(ckpt_changelog_${component} ALL DEPENDS ${ckpt_changelog}.${pkg}.gz)
  install(FILES ${ckpt_changelog}.${pkg}.gz DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/${pkg}
          RENAME changelog.gz COMPONENT ${component})
  install(FILES ${PROJECT_SOURCE_DIR}/packaging/copyright DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/${pkg}
          COMPONENT ${component})
endforeach()

include(CPack)

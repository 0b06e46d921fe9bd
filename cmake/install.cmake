# SPDX-License-Identifier: Apache-2.0
# Install rules (CKPT_INSTALL, on when ckpt is the top-level project), in two components:
#   cli: the ckpt command, its man pages and its shell completions;
#   dev: libckpt.a, the public headers, the CMake package (find_package(ckpt CONFIG) -> ckpt::ckpt)
#        and ckpt.pc.
# cmake --install BUILD installs both; --component cli|dev one.
include(CMakePackageConfigHelpers)

# ---- cli -------------------------------------------------------------------
if(TARGET ckpt_bin)
  install(TARGETS ckpt_bin RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT cli)
endif()
# The man pages, stamped with this version (@PROJECT_VERSION@: the .TH header, the examples),
# compressed as Debian policy wants them (man reads them either way).
file(GLOB CKPT_MAN_PAGES ${PROJECT_SOURCE_DIR}/man/*.[15])
set(ckpt_man_gz "")
foreach(page IN LISTS CKPT_MAN_PAGES)
  get_filename_component(page_name ${page} NAME)
  string(REGEX MATCH "[15]$" section ${page_name})
  configure_file(${page} ${PROJECT_BINARY_DIR}/man/${page_name} @ONLY)
  add_custom_command(OUTPUT ${PROJECT_BINARY_DIR}/man/${page_name}.gz
                     COMMAND gzip -9nkf ${PROJECT_BINARY_DIR}/man/${page_name}
                     DEPENDS ${PROJECT_BINARY_DIR}/man/${page_name})
  list(APPEND ckpt_man_gz ${PROJECT_BINARY_DIR}/man/${page_name}.gz)
  install(FILES ${PROJECT_BINARY_DIR}/man/${page_name}.gz
          DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section} COMPONENT cli)
endforeach()
add_custom_target(ckpt_man_pages ALL DEPENDS ${ckpt_man_gz})
# Shell completions go where each shell looks for the install prefix PREFIX (CMAKE_INSTALL_PREFIX,
# or cmake --install --prefix); CKPT_ZSH_COMPLETIONS_DIR and CKPT_FISH_COMPLETIONS_DIR, when set,
# are used instead (relative to PREFIX, or absolute).
# - bash: PREFIX/share/bash-completion/completions/ckpt. bash-completion reads the
#   bash-completion/completions of each directory of XDG_DATA_DIRS (default /usr/local/share:/usr/share).
install(FILES completions/ckpt.bash DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions
        RENAME ckpt COMPONENT cli)
# - zsh: PREFIX/share/zsh/site-functions/_ckpt, on zsh's default $fpath for /usr/local (and for /usr,
#   except on Debian, whose zsh reads PREFIX/share/zsh/vendor-completions instead: that one then).
#   zsh's $fpath is asked here (zsh -f); without zsh, site-functions.
# - fish: PREFIX/share/fish/vendor_completions.d/ckpt.fish, which fish reads for its own prefix
#   (/usr for Debian's fish) and for ~/.local, and for any other PREFIX only when XDG_DATA_DIRS lists
#   PREFIX/share. XDG_DATA_DIRS is often unset (logins without a desktop session) and fish then reads
#   no directory under /usr/local, so for the prefix /usr/local the file goes to fish's own vendor
#   directory: pkg-config --variable completionsdir fish (else found from where fish is installed).
set(CKPT_ZSH_COMPLETIONS_DIR "" CACHE STRING "Where _ckpt goes (default: where zsh looks for the prefix)")
set(CKPT_FISH_COMPLETIONS_DIR "" CACHE STRING "Where ckpt.fish goes (default: where fish looks for the prefix)")
if(CKPT_ZSH_COMPLETIONS_DIR)
  install(FILES completions/_ckpt DESTINATION ${CKPT_ZSH_COMPLETIONS_DIR} COMPONENT cli)
else()
  set(ckpt_zsh_fpath "")
  find_program(CKPT_ZSH zsh)
  if(CKPT_ZSH)
    execute_process(COMMAND ${CKPT_ZSH} -fc "print -rl -- \$fpath" OUTPUT_VARIABLE ckpt_zsh_fpath
                    OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET TIMEOUT 10)
    string(REPLACE "\n" ";" ckpt_zsh_fpath "${ckpt_zsh_fpath}")
  endif()
  install(CODE "set(ckpt_zsh_fpath [[${ckpt_zsh_fpath}]])
    set(ckpt_zsh_dir \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_DATADIR}/zsh/vendor-completions\")
    list(FIND ckpt_zsh_fpath \"\${ckpt_zsh_dir}\" ckpt_i)
    if(ckpt_i EQUAL -1)
      set(ckpt_zsh_dir \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_DATADIR}/zsh/site-functions\")
    endif()
    file(INSTALL DESTINATION \"\${ckpt_zsh_dir}\" TYPE FILE FILES [[${PROJECT_SOURCE_DIR}/completions/_ckpt]])"
    COMPONENT cli)
endif()
if(CKPT_FISH_COMPLETIONS_DIR)
  install(FILES completions/ckpt.fish DESTINATION ${CKPT_FISH_COMPLETIONS_DIR} COMPONENT cli)
else()
  set(ckpt_fish_vendor_dir "")
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    pkg_get_variable(ckpt_fish_vendor_dir fish completionsdir)
  endif()
  find_program(CKPT_FISH fish)
  if(NOT ckpt_fish_vendor_dir AND CKPT_FISH)
    get_filename_component(ckpt_fish_prefix ${CKPT_FISH} REALPATH)
    get_filename_component(ckpt_fish_prefix ${ckpt_fish_prefix} DIRECTORY)
    get_filename_component(ckpt_fish_prefix ${ckpt_fish_prefix} DIRECTORY)
    if(IS_DIRECTORY ${ckpt_fish_prefix}/share/fish/vendor_completions.d)
      set(ckpt_fish_vendor_dir ${ckpt_fish_prefix}/share/fish/vendor_completions.d)
    endif()
  endif()
  install(CODE "set(ckpt_fish_dir \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_DATADIR}/fish/vendor_completions.d\")
    if(CMAKE_INSTALL_PREFIX STREQUAL \"/usr/local\" AND NOT [[${ckpt_fish_vendor_dir}]] STREQUAL \"\")
      set(ckpt_fish_dir [[${ckpt_fish_vendor_dir}]])
    endif()
    file(INSTALL DESTINATION \"\${ckpt_fish_dir}\" TYPE FILE FILES [[${PROJECT_SOURCE_DIR}/completions/ckpt.fish]])"
    COMPONENT cli)
endif()

# ---- dev -------------------------------------------------------------------
install(TARGETS ckpt EXPORT ckptTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/lib/include/ckpt ${PROJECT_BINARY_DIR}/include/ckpt
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev
        FILES_MATCHING PATTERN "*.hpp")
set(CKPT_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/ckpt)
install(EXPORT ckptTargets NAMESPACE ckpt:: DESTINATION ${CKPT_CMAKE_DIR} COMPONENT dev)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/ckptConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/ckptConfig.cmake
                              INSTALL_DESTINATION ${CKPT_CMAKE_DIR})
# Before 1.0 a minor version may break the API (CHANGELOG.md): 0.2 accepts 0.2.x only.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/ckptConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/ckptConfig.cmake ${PROJECT_BINARY_DIR}/ckptConfigVersion.cmake
        DESTINATION ${CKPT_CMAKE_DIR} COMPONENT dev)
# ckpt.pc: filled in now but for the prefix, which is taken at install time, so that
# cmake --install --prefix P works.
set(CKPT_PC_PREFIX "@CKPT_PC_PREFIX@")
# dlopen (libcurl is loaded at run time): in libc since glibc 2.34, in libdl before.
set(CKPT_PC_DL "")
foreach(lib IN LISTS CMAKE_DL_LIBS)
  string(APPEND CKPT_PC_DL " -l${lib}")
endforeach()
configure_file(${PROJECT_SOURCE_DIR}/cmake/ckpt.pc.in ${PROJECT_BINARY_DIR}/ckpt.pc.in @ONLY)
install(CODE "set(CKPT_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  configure_file([[${PROJECT_BINARY_DIR}/ckpt.pc.in]] [[${PROJECT_BINARY_DIR}/ckpt.pc]] @ONLY)"
  COMPONENT dev)
install(FILES ${PROJECT_BINARY_DIR}/ckpt.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)
include(${PROJECT_SOURCE_DIR}/cmake/packaging.cmake)

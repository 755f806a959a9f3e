# symwire_write_pkg_config(<name>...): writes and installs <name>.pc for
# symwire (the codec and the session), symwire-transport, symwire-tls,
# symwire-nats and symwire-nats-runtime.
# The files are relocatable: every path is relative to ${pcfiledir}.
#
# Boost has no pkg-config file; its headers are expected on the default
# include path (Debian: /usr/include). Compile with -std=c++20.
function(symwire_write_pkg_config)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
    set(_prefix "${CMAKE_INSTALL_PREFIX}")
  else()
    file(RELATIVE_PATH _up "/r/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/r")
    string(REGEX REPLACE "/$" "" _up "${_up}")
    set(_prefix "\${pcfiledir}/${_up}")
  endif()
  # libcrypto: see SYMWIRE_CONFIG_NEEDS_CRYPTO in CMakeLists.txt.
  set(_crypto "")
  if(SYMWIRE_CONFIG_NEEDS_CRYPTO)
    set(_crypto " libcrypto")
  endif()
  set(_cflags "-I\${includedir}")
  if(SYMWIRE_HEADER_ONLY)
    string(APPEND _cflags " -DSYMWIRE_HEADER_ONLY=1")
  endif()
  foreach(_name IN LISTS ARGN)
    if(_name STREQUAL "symwire")
      set(_description "symwire: frame codec and session (layers 1-2)")
      set(_requires "absl_status absl_statusor absl_strings absl_str_format absl_span absl_time absl_flat_hash_map absl_inlined_vector libxxhash${_crypto}")
      set(_lib symwire)
      set(_extra_libs "")
    elseif(_name STREQUAL "symwire-transport")
      set(_description "symwire: transports and the Client/Server runtime (layer 3)")
      set(_requires "symwire${_crypto}")
      set(_lib symwire_transport)
      set(_extra_libs " -pthread")
    elseif(_name STREQUAL "symwire-nats")
      set(_description "symwire: pools over NATS JetStream (SPEC.md §21, cnats)")
      set(_requires "symwire libnats")
      set(_lib symwire_nats)
      set(_extra_libs " -pthread")
    elseif(_name STREQUAL "symwire-nats-runtime")
      set(_description "symwire: the runtime's API over a NATS JetStream pool")
      set(_requires "symwire-transport symwire-nats")
      set(_lib symwire_nats_runtime)
      set(_extra_libs " -pthread")
    else()
      set(_description "symwire: the TLS transport (layer 3, OpenSSL)")
      set(_requires "symwire-transport libssl libcrypto")
      set(_lib symwire_tls)
      set(_extra_libs "")
    endif()
    if(SYMWIRE_HEADER_ONLY)
      set(_libs "${_extra_libs}")
    else()
      set(_libs "-L\${libdir} -l${_lib}${_extra_libs}")
    endif()
    string(STRIP "${_libs}" _libs)
    file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/pkgconfig/${_name}.pc
"prefix=${_prefix}
includedir=\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}
libdir=\${prefix}/${CMAKE_INSTALL_LIBDIR}

Name: ${_name}
Description: ${_description}
Version: ${PROJECT_VERSION}
Requires: ${_requires}
Cflags: ${_cflags}
Libs: ${_libs}
")
    install(FILES ${CMAKE_CURRENT_BINARY_DIR}/pkgconfig/${_name}.pc
      DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
  endforeach()
endfunction()

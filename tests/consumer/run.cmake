# ctest driver (install_consumer): uses symwire the ways its users do.
#   1. installs the build tree into a scratch prefix and checks the layout
#      (no include/symwire/testing/ unless the `testing` component is asked
#      for; tools, the Wireshark dissector and LICENSE under share/);
#   2. find_package(symwire) from a stand-alone project (tests/consumer):
#      codec only (with a shared libsymwire: OpenSSL made unfindable), and
#      COMPONENTS transport tls, nats, and nats_runtime alone (which must
#      bring in transport and nats); an unknown or missing component must fail
#      with a message naming it;
#   3. pkg-config: compiles and links main.cpp (and tls_main.cpp) with
#      `pkg-config --cflags --libs symwire` (symwire-tls); resolves
#      symwire-nats-runtime;
#   4. FULL only (one preset is enough; see tests/CMakeLists.txt): a shared
#      Release build of the libraries (top level, so -Werror: the compiled
#      libraries at -O3 in CI; exports only the API: no symwire:: inline or
#      template symbol in the dynamic symbol table) used by both consumers,
#      and add_subdirectory(symwire) from a project with an extra warning
#      flag (tests/consumer/subdir).
# The extra builds compile only the libraries, with Ninja; ccache is used when
# the environment sets CMAKE_CXX_COMPILER_LAUNCHER (CMake reads it).
# Inputs: SOURCE_DIR BUILD_DIR WORK_DIR CXX CXX_FLAGS LINKER_FLAGS HEADER_ONLY
#         SHARED TRANSPORT TOOLS FULL PKG_CONFIG
cmake_minimum_required(VERSION 3.25)
set(here ${SOURCE_DIR}/tests/consumer)
file(REMOVE_RECURSE ${WORK_DIR})

function(run)  # run(<what> COMMAND ...): fails the test when it fails
  cmake_parse_arguments(ARG "" "" "COMMAND" ${ARGN})
  execute_process(COMMAND ${ARG_COMMAND} RESULT_VARIABLE rc
    OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(rc)
    message(FATAL_ERROR "${ARGV0} failed (${rc}):\n${out}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

function(expect_file path)
  if(NOT EXISTS ${path})
    message(FATAL_ERROR "missing from the install: ${path}")
  endif()
endfunction()

# consume(<name> <prefix> <components> [ENV var=value...]): configures,
# builds and runs tests/consumer against <prefix>.
function(consume name prefix components)
  set(dir ${WORK_DIR}/${name})
  set(extra)
  if(NOT components AND SHARED_LIBSYMWIRE)
    # A codec-only consumer of a shared libsymwire needs no OpenSSL.
    list(APPEND extra -DCMAKE_DISABLE_FIND_PACKAGE_OpenSSL=ON)
  endif()
  run("configuring consumer ${name}" COMMAND ${CMAKE_COMMAND} -S ${here} -B ${dir}
    -G Ninja -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_PREFIX_PATH=${prefix}
    "-DSYMWIRE_COMPONENTS=${components}" ${extra}
    "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}" "-DCMAKE_EXE_LINKER_FLAGS=${LINKER_FLAGS}")
  run("building consumer ${name}" COMMAND ${CMAKE_COMMAND} --build ${dir})
  run("running consumer ${name}" COMMAND ${dir}/consumer)
  string(REPLACE "," ";" component_list "${components}")
  foreach(component tls nats nats_runtime)
    if(component IN_LIST component_list)
      run("running consumer ${name} (${component})"
        COMMAND ${dir}/consumer_${component})
    endif()
  endforeach()
endfunction()

# expect_config_error(<name> <prefix> <components> <regex>)
function(expect_config_error name prefix components regex)
  execute_process(COMMAND ${CMAKE_COMMAND} -S ${here} -B ${WORK_DIR}/${name}
    -G Ninja -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_PREFIX_PATH=${prefix}
    "-DSYMWIRE_COMPONENTS=${components}"
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc OR NOT out MATCHES "${regex}")
    message(FATAL_ERROR "find_package(symwire COMPONENTS ${components}) should "
      "fail with \"${regex}\"; got (${rc}):\n${out}")
  endif()
endfunction()

# 1. The install.
set(prefix ${WORK_DIR}/prefix)
run("cmake --install" COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
expect_file(${prefix}/include/symwire/symwire.hpp)
expect_file(${prefix}/share/doc/symwire/LICENSE)
if(EXISTS ${prefix}/include/symwire/testing)
  message(FATAL_ERROR "include/symwire/testing/ is in the default install")
endif()
if(TOOLS)
  expect_file(${prefix}/bin/symwire-dump)
  expect_file(${prefix}/bin/symwire-soak)
  expect_file(${prefix}/share/symwire/wireshark/symwire.lua)
endif()
run("cmake --install --component testing" COMMAND ${CMAKE_COMMAND}
  --install ${BUILD_DIR} --prefix ${WORK_DIR}/prefix-testing --component testing)
expect_file(${WORK_DIR}/prefix-testing/include/symwire/testing/fault_proxy.hpp)

# 2. find_package.
set(SHARED_LIBSYMWIRE ${SHARED})
if(HEADER_ONLY)
  set(SHARED_LIBSYMWIRE OFF)
endif()
consume(codec ${prefix} "")
if(NATS)
  consume(nats ${prefix} "nats")
  if(TRANSPORT)
    # nats_runtime alone: the config must bring in transport and nats.
    consume(nats_runtime ${prefix} "nats_runtime")
  endif()
endif()
if(TRANSPORT)
  consume(tls ${prefix} "transport,tls")
else()
  expect_config_error(no_transport ${prefix} "transport"
    "symwire component \"transport\" is not in this installation")
endif()
# An unknown component after a valid one (transport, when it was built: the
# config checks components in order, so an unbuilt transport would be
# reported first).
if(TRANSPORT)
  set(bogus_components "transport,bogus")
else()
  set(bogus_components "bogus")
endif()
expect_config_error(bogus ${prefix} "${bogus_components}"
  "symwire has no component \"bogus\"")

# 3. pkg-config.
if(PKG_CONFIG)
  file(GLOB_RECURSE pc_file ${prefix}/symwire.pc)
  get_filename_component(pc_dir "${pc_file}" DIRECTORY)
  set(ENV{PKG_CONFIG_PATH} ${pc_dir})
  set(ENV{LD_LIBRARY_PATH} ${pc_dir}/..)  # a shared libsymwire
  set(pc_programs symwire main)
  if(TRANSPORT)
    list(APPEND pc_programs symwire-tls tls_main)
  endif()
  if(TRANSPORT AND NATS)
    # Resolved only: compiling nats_runtime_main.cpp again (step 2 links it)
    # would add a minute of Asio to every preset for little.
    run("pkg-config symwire-nats-runtime" COMMAND ${PKG_CONFIG} --cflags --libs
      symwire-nats-runtime)
    if(NOT last_output MATCHES "symwire_nats_runtime" AND NOT HEADER_ONLY)
      message(FATAL_ERROR "symwire-nats-runtime.pc links no libsymwire_nats_runtime: ${last_output}")
    endif()
  endif()
  separate_arguments(cxx_flags UNIX_COMMAND "${CXX_FLAGS}")
  separate_arguments(linker_flags UNIX_COMMAND "${LINKER_FLAGS}")
  while(pc_programs)
    list(POP_FRONT pc_programs package source)
    run("pkg-config ${package}" COMMAND ${PKG_CONFIG} --cflags --libs ${package})
    separate_arguments(flags UNIX_COMMAND "${last_output}")
    run("compiling ${source}.cpp with pkg-config ${package}" COMMAND ${CXX}
      -std=c++20 ${cxx_flags} ${here}/${source}.cpp ${flags} ${linker_flags}
      -o ${WORK_DIR}/pc_${source})
    run("running pc_${source}" COMMAND ${WORK_DIR}/pc_${source})
  endwhile()
endif()

if(NOT FULL)
  return()
endif()

# 4a. A shared build of the libraries.
set(shared_build ${WORK_DIR}/shared-build)
set(shared_prefix ${WORK_DIR}/shared-prefix)
run("configuring the shared build" COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR}
  -B ${shared_build} -G Ninja -DCMAKE_CXX_COMPILER=${CXX}
  -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DSYMWIRE_BUILD_TESTS=OFF -DSYMWIRE_BUILD_EXAMPLES=OFF
  -DSYMWIRE_BUILD_BENCH=OFF -DSYMWIRE_BUILD_TOOLS=OFF
  "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}" "-DCMAKE_SHARED_LINKER_FLAGS=${LINKER_FLAGS}")
run("building the shared libraries" COMMAND ${CMAKE_COMMAND} --build ${shared_build})
run("installing the shared build" COMMAND ${CMAKE_COMMAND} --install ${shared_build}
  --prefix ${shared_prefix})
find_program(NM nm)
if(NM)
  file(GLOB_RECURSE libs ${shared_prefix}/libsymwire*.so)
  if(NOT libs)
    message(FATAL_ERROR "no libsymwire*.so under ${shared_prefix}")
  endif()
  foreach(lib IN LISTS libs)
    run("nm ${lib}" COMMAND ${NM} -D -C --defined-only ${lib})
    # Inline functions and templates are weak (W); with hidden visibility
    # none of symwire's may be exported, only SYMWIRE_DECL functions (T)
    # and SYMWIRE_API classes' vtables and type_info (V).
    string(REGEX MATCHALL "[0-9a-f]+ W symwire::[^\n]*" leaked "${last_output}")
    if(leaked)
      list(JOIN leaked "\n" leaked)
      message(FATAL_ERROR "${lib} exports inline/template symbols:\n${leaked}")
    endif()
    if(NOT last_output MATCHES " T symwire::")
      message(FATAL_ERROR "${lib} exports no symwire:: function:\n${last_output}")
    endif()
  endforeach()
endif()
set(SHARED_LIBSYMWIRE ON)
consume(shared_codec ${shared_prefix} "")
consume(shared_tls ${shared_prefix} "transport,tls")

# 4b. add_subdirectory with a warning symwire does not expect.
run("configuring the add_subdirectory consumer" COMMAND ${CMAKE_COMMAND}
  -S ${here}/subdir -B ${WORK_DIR}/subdir -G Ninja -DCMAKE_CXX_COMPILER=${CXX}
  -DSYMWIRE_SOURCE_DIR=${SOURCE_DIR}
  "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}" "-DCMAKE_EXE_LINKER_FLAGS=${LINKER_FLAGS}")
run("building the add_subdirectory consumer" COMMAND ${CMAKE_COMMAND}
  --build ${WORK_DIR}/subdir --target consumer)
if(NOT last_output MATCHES "Wpadded")
  message(FATAL_ERROR "the add_subdirectory build showed no -Wpadded warning "
    "(so the test proves nothing):\n${last_output}")
endif()
run("running the add_subdirectory consumer" COMMAND ${WORK_DIR}/subdir/consumer)

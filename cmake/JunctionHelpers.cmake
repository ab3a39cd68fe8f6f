# CMake helpers so each module, plugin and test is a few lines.
#
#   junction_library(NAME core_config SOURCES a.cc b.cc DEPS junction::sdk yaml-cpp)
#     -> static library target `junction_core_config`, alias `junction::core_config`.
#   junction_plugin(NAME file SOURCES file_destination.cc [DEPS ...])
#     -> MODULE library `build/plugins/libjunction_file.so`, hidden visibility, linked only
#        against the SDK (core headers are not on its include path), exporting only the
#        plugin entry point and SDK typeinfo (version script); installed to
#        JUNCTION_INSTALL_PLUGINDIR (<prefix>/plugins). With OUTPUT_DIRECTORY (test fixtures):
#        built there, not installed.
#   junction_test(NAME config_test SOURCES config_test.cc DEPS junction::core_config [LABELS ..])
#     -> GoogleTest executable registered with ctest via gtest_discover_tests.

set(JUNCTION_WARNINGS -Wall -Wextra -Wpedantic -Wshadow=local -Wnon-virtual-dtor
    -Wno-missing-field-initializers)

function(junction_apply_warnings target)
  target_compile_options(${target} PRIVATE ${JUNCTION_WARNINGS})
  if(JUNCTION_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

function(junction_library)
  cmake_parse_arguments(ARG "" "NAME" "SOURCES;DEPS;PUBLIC_DEPS" ${ARGN})
  add_library(junction_${ARG_NAME} STATIC ${ARG_SOURCES})
  add_library(junction::${ARG_NAME} ALIAS junction_${ARG_NAME})
  target_include_directories(junction_${ARG_NAME} PUBLIC ${CMAKE_SOURCE_DIR})
  target_link_libraries(junction_${ARG_NAME} PUBLIC ${ARG_PUBLIC_DEPS} ${ARG_DEPS})
  junction_apply_warnings(junction_${ARG_NAME})
endfunction()

set(JUNCTION_PLUGIN_VERSION_SCRIPT ${CMAKE_SOURCE_DIR}/sdk/cmake/plugin.map)

function(junction_plugin)
  cmake_parse_arguments(ARG "" "NAME;OUTPUT_DIRECTORY" "SOURCES;DEPS" ${ARGN})
  set(target junction_plugin_${ARG_NAME})
  add_library(${target} MODULE ${ARG_SOURCES})
  if(NOT ARG_OUTPUT_DIRECTORY)
    set(ARG_OUTPUT_DIRECTORY ${JUNCTION_PLUGIN_OUTPUT_DIRECTORY})
    # A built-in plugin: installed where the installed junctiond finds it (../plugins).
    install(TARGETS ${target} LIBRARY DESTINATION ${JUNCTION_INSTALL_PLUGINDIR})
  endif()
  set_target_properties(${target} PROPERTIES
    OUTPUT_NAME junction_${ARG_NAME}
    PREFIX lib
    LIBRARY_OUTPUT_DIRECTORY ${ARG_OUTPUT_DIRECTORY}
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  # Only the SDK: a plugin cannot include core headers (the source root is not on its path).
  target_link_libraries(${target} PRIVATE junction::sdk ${ARG_DEPS})
  target_link_options(${target} PRIVATE
    -Wl,--version-script=${JUNCTION_PLUGIN_VERSION_SCRIPT} -Wl,--no-undefined)
  set_property(TARGET ${target} APPEND PROPERTY LINK_DEPENDS ${JUNCTION_PLUGIN_VERSION_SCRIPT})
  junction_apply_warnings(${target})
  set_property(GLOBAL APPEND PROPERTY JUNCTION_PLUGIN_TARGETS ${target})
endfunction()

function(junction_test)
  cmake_parse_arguments(ARG "" "NAME;TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SOURCES})
  set_target_properties(${ARG_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  target_include_directories(${ARG_NAME} PRIVATE ${CMAKE_SOURCE_DIR})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} GTest::gmock GTest::gtest GTest::gtest_main)
  target_compile_definitions(${ARG_NAME} PRIVATE
    JUNCTION_SOURCE_DIR="${CMAKE_SOURCE_DIR}"
    JUNCTION_BINARY_DIR="${CMAKE_BINARY_DIR}")
  junction_apply_warnings(${ARG_NAME})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  gtest_discover_tests(${ARG_NAME}
    DISCOVERY_TIMEOUT 30
    PROPERTIES TIMEOUT ${ARG_TIMEOUT} LABELS "${ARG_LABELS}")
endfunction()

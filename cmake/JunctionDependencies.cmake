# Every third-party dependency, found once. All come from Debian 12 packages (scripts/deps).
find_package(Threads REQUIRED)
find_package(Boost 1.81.0 EXACT REQUIRED CONFIG COMPONENTS json url filesystem)
find_package(yaml-cpp REQUIRED)
find_package(CURL REQUIRED)
find_package(OpenSSL REQUIRED)
find_package(ZLIB REQUIRED)
find_package(CLI11 REQUIRED)
if(JUNCTION_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(JUNCTION_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()

# Boost.Asio/Beast configuration shared by every target that includes them.
add_library(junction_asio INTERFACE)
target_link_libraries(junction_asio INTERFACE Boost::headers Threads::Threads)
target_compile_definitions(junction_asio INTERFACE
  BOOST_ASIO_NO_DEPRECATED BOOST_BEAST_USE_STD_STRING_VIEW)

# src/server: the moat_server library (release store, publishing, request parsing, the
# HTTPS service and MQTT ingest) without moatd's main(), which src/server/CMakeLists.txt
# links into the moatd executable.
file(GLOB _server_srcs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/server/*.c)
list(REMOVE_ITEM _server_srcs ${CMAKE_SOURCE_DIR}/src/server/moatd_main.c)
add_library(moat_server STATIC ${_server_srcs})
target_link_libraries(moat_server PUBLIC moat_agent moat_firmware moat_deploy PkgConfig::MHD
                      PkgConfig::GNUTLS PkgConfig::MOSQ PkgConfig::CJSON PkgConfig::OPENSSL
                      PkgConfig::SQLITE Threads::Threads)

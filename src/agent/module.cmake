# src/agent: the moat_agent library (device behaviour, session loop, queue, sensors,
# diagnostics, simulator) without the daemon's main(), which src/agent/CMakeLists.txt
# links into the moat-agent executable.
file(GLOB _agent_srcs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/agent/*.c)
list(REMOVE_ITEM _agent_srcs ${CMAKE_SOURCE_DIR}/src/agent/agent_main.c)
add_library(moat_agent STATIC ${_agent_srcs})
target_link_libraries(moat_agent PUBLIC moat_update moat_deploy PkgConfig::MOSQ PkgConfig::OPENSSL
                      PkgConfig::CJSON)

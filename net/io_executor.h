// Continuing a request asynchronously on the I/O thread that received it.
//
// A handler that must wait on the network (the gateway forwarding to a replica) can run that
// work as a coroutine on the connection's own executor instead of handing it to another
// thread: io_executor_of(writer) is the executor of the writer's connection: that of the event loop
// (HttpServer I/O thread) the connection lives on. Work posted or co_spawned there runs on that
// thread, serialized with the connection's own handlers, so it may call the writer and
// be woken by socket events with no thread switch.
//
// nullopt when the writer is bound to nothing, its connection is gone, or its server is
// stopping: there is then nobody to answer, and nothing must be started. Work still pending on
// the executor when the server stops is destroyed by HttpServer::stop() (coroutine frames
// included, running their destructors), so such work must only refer to objects that outlive
// the server's stop().
#pragma once

#include <optional>

#include <boost/asio/any_io_executor.hpp>

#include "net/response_writer.h"

namespace spillway::net {

std::optional<boost::asio::any_io_executor> io_executor_of(const ResponseWriter& writer);

}  // namespace spillway::net

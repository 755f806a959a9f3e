// Links symwire::tls (and through it symwire::transport) from an installed
// symwire: builds a TLS client context and converts an Asio error.
#include <cstdio>

#include "boost/asio/error.hpp"
#include "symwire/transport/tls.hpp"
#include "symwire/transport/transport.hpp"

int main() {
  auto context = symwire::MakeTlsClientContext({});
  if (!context.ok()) return 1;
  const absl::Status status =
      symwire::ToStatus(boost::asio::error::eof, "consumer read");
  std::printf("%s\n", std::string(status.message()).c_str());
  return status.ok() ? 2 : 0;
}

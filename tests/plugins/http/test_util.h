#pragma once

// Helpers shared by the http source tests.

#include <zlib.h>

#include <stdexcept>
#include <string>
#include <string_view>

namespace junction::plugins::http::testing {

// gzip (`gzip` true) or zlib stream of `data`.
inline std::string compress(std::string_view data, bool gzip = true) {
  z_stream zs{};
  if (deflateInit2(&zs, Z_BEST_SPEED, Z_DEFLATED, gzip ? 15 + 16 : 15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::runtime_error("deflateInit2");
  }
  std::string out(deflateBound(&zs, static_cast<uLong>(data.size())) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END) {
    deflateEnd(&zs);
    throw std::runtime_error("deflate");
  }
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

}  // namespace junction::plugins::http::testing

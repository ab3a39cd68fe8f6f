#pragma once

// The dashboard's static files (core/daemon/ui/), compiled into the daemon by
// cmake/EmbedFiles.cmake and served at /ui/ (core/daemon/README.md).

#include <string_view>
#include <vector>

namespace junction::core::daemon {

struct UiFile {
  std::string_view name;  // "index.html"
  std::string_view content_type;
  std::string_view data;
};

const std::vector<UiFile>& uiFiles();

}  // namespace junction::core::daemon

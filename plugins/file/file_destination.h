#pragma once

// The `file` destination: appends delivered events to a file as NDJSON, one line per event (the
// event JSON as received, plus `receivedAt`), rotating by size. For debugging, archives and tests.

#include <cstdint>
#include <mutex>
#include <string>

#include "junction/sdk/destination.h"
#include "junction/sdk/files.h"
#include "junction/sdk/options.h"

namespace junction::plugins::file {

struct FileConfig {
  std::string path;
  std::uint64_t max_file_bytes = 0;
  std::int64_t max_files = 0;
  bool sync = true;
  bool keep_page_cache = false;

  std::vector<sdk::OptionError> validate() const;
};

const sdk::OptionTable<FileConfig>& fileOptions();

// The line written for `event`: its JSON with `receivedAt` added when absent.
std::string formatLine(const sdk::Event& event);
// The same line, appended to `out` (deliver() builds a batch's lines in one buffer).
void appendLine(const sdk::Event& event, std::string& out);

// Thread-safe: concurrent deliver() calls are serialized on the file.
class FileDestination final : public sdk::Destination {
 public:
  FileDestination(FileConfig config, sdk::DestinationContext& context);
  ~FileDestination() override;

  sdk::Status start() override;
  std::vector<sdk::Outcome> deliver(std::span<const sdk::Event> batch) override;
  void stop() override;

 private:
  sdk::Status openFile();
  sdk::Status rotate();

  FileConfig config_;
  sdk::DestinationContext& context_;
  sdk::Counter& written_bytes_;
  sdk::Counter& rotations_;
  std::mutex mutex_;
  int fd_ = -1;
  std::uint64_t size_ = 0;  // bytes of complete batches in the file
  bool torn_ = false;       // a failed batch could not be cut off yet
  std::uint64_t dropped_until_ = 0;  // page cache of [0, this) dropped after a sync
  sdk::FileReleaser releaser_;  // files rotated out, freed gradually
};

}  // namespace junction::plugins::file

#include "core/queue/record.h"

#include <gtest/gtest.h>

#include <string>

#include "core/queue/crc32c.h"
#include "tests/core/queue/test_util.h"

namespace junction::core::queue {
namespace {

TEST(Crc32cTest, Rfc3720Vectors) {
  const std::string zeros(32, '\0');
  const std::string ones(32, '\xFF');
  const std::string digits = "123456789";
  EXPECT_EQ(crc32c(zeros), 0x8A9136AAu);
  EXPECT_EQ(crc32c(ones), 0x62A8AB43u);
  EXPECT_EQ(crc32c(digits), 0xE3069283u);
  EXPECT_EQ(crc32cSoftware(zeros.data(), zeros.size()), 0x8A9136AAu);
  EXPECT_EQ(crc32cSoftware(digits.data(), digits.size()), 0xE3069283u);
  if (crc32cHardwareAvailable()) {
    EXPECT_EQ(crc32cHardware(zeros.data(), zeros.size()), 0x8A9136AAu);
    EXPECT_EQ(crc32cHardware(digits.data(), digits.size()), 0xE3069283u);
  }
}

TEST(Crc32cTest, IncrementalAndImplementationsAgree) {
  std::string data;
  for (int i = 0; i < 1000; ++i) {
    data.push_back(static_cast<char>(i * 131 + 7));
  }
  for (std::size_t split : {0u, 1u, 7u, 8u, 9u, 500u, 999u, 1000u}) {
    const std::uint32_t a = crc32c(data.data(), split);
    EXPECT_EQ(crc32c(data.data() + split, data.size() - split, a), crc32c(data)) << split;
    EXPECT_EQ(crc32cSoftware(data.data(), split), a) << split;
  }
}

TEST(RecordTest, RoundTripKeepsEveryField) {
  sdk::EventHeader h;
  h.type = sdk::EventType::Identify;
  h.message_id = "msg-1";
  h.user_id = "u1";
  h.anonymous_id = "anon-\xC3\xA9";
  h.name = "";
  h.source_id = "http";
  h.timestamp_ms = -5;
  h.received_at_ms = 1'800'000'000'123;
  const std::string json = R"({"type":"identify","traits":{"email":"a@b.c"}})";
  const sdk::Event event(h, json);

  std::string bytes = "prefix";
  ASSERT_TRUE(encodeRecord(event, bytes).ok());
  ASSERT_EQ(bytes.size(), 6 + encodedRecordSize(event));
  auto decoded = decodeRecord(std::string_view(bytes).substr(6));
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_EQ(decoded->size, encodedRecordSize(event));
  const sdk::Event& e = decoded->event;
  EXPECT_EQ(e.type(), sdk::EventType::Identify);
  EXPECT_EQ(e.messageId(), "msg-1");
  EXPECT_EQ(e.userId(), "u1");
  EXPECT_EQ(e.anonymousId(), "anon-\xC3\xA9");
  EXPECT_EQ(e.name(), "");
  EXPECT_EQ(e.header().source_id, "http");
  EXPECT_EQ(e.header().timestamp_ms, -5);
  EXPECT_EQ(e.header().received_at_ms, 1'800'000'000'123);
  EXPECT_EQ(e.json(), json);
}

TEST(RecordTest, DetectsEveryKindOfDamage) {
  std::string bytes;
  ASSERT_TRUE(encodeRecord(testing::makeTestEvent(1, 2), bytes).ok());
  EXPECT_EQ(inspectRecord(bytes).status, RecordStatus::Ok);

  EXPECT_EQ(inspectRecord(std::string_view(bytes).substr(0, bytes.size() - 1)).status,
            RecordStatus::Truncated);
  EXPECT_EQ(inspectRecord(std::string_view(bytes).substr(0, 10)).status, RecordStatus::Truncated);

  for (std::size_t i = 4; i < bytes.size(); ++i) {  // every single-bit flip past the magic
    std::string damaged = bytes;
    damaged[i] = static_cast<char>(damaged[i] ^ 0x10);
    EXPECT_NE(inspectRecord(damaged).status, RecordStatus::Ok) << "flip at " << i;
  }
  std::string bad_magic = bytes;
  bad_magic[0] = 'X';
  EXPECT_EQ(inspectRecord(bad_magic).status, RecordStatus::BadMagic);
  std::string bad_version = bytes;
  bad_version[4] = 9;
  EXPECT_EQ(inspectRecord(bad_version).status, RecordStatus::BadVersion);
  std::string bad_length = bytes;
  bad_length[11] = 0x7F;
  EXPECT_EQ(inspectRecord(bad_length).status, RecordStatus::BadLength);
  std::string bad_crc = bytes;
  bad_crc.back() = static_cast<char>(bad_crc.back() ^ 1);
  EXPECT_EQ(inspectRecord(bad_crc).status, RecordStatus::BadChecksum);
  EXPECT_FALSE(decodeRecord(bad_crc).ok());
}

TEST(RecordTest, ATaggedRecordIsValidOnlyInItsSegment) {
  std::string bytes;
  ASSERT_TRUE(encodeRecord(testing::makeTestEvent(1, 2), bytes).ok());
  const std::uint16_t mine = segmentTag(4096);
  const std::uint16_t other = segmentTag(8192);
  ASSERT_NE(mine, other);
  stampRecord(bytes.data(), mine);

  const RecordView ok = inspectRecord(bytes, mine);
  ASSERT_EQ(ok.status, RecordStatus::Ok);
  EXPECT_EQ(ok.size, bytes.size());
  ASSERT_TRUE(decodePayload(ok.payload).ok());
  EXPECT_EQ(decodePayload(ok.payload)->messageId(), "m-1-2");

  // The same intact bytes read in another segment (a recycled file) are its previous use.
  const RecordView stale = inspectRecord(bytes, other);
  EXPECT_EQ(stale.status, RecordStatus::Stale);
  EXPECT_EQ(stale.size, bytes.size());
  EXPECT_EQ(inspectRecord(bytes, 0).status, RecordStatus::Stale);
  EXPECT_FALSE(decodeRecord(bytes).ok());  // outside the log, records carry tag 0

  // A damaged tag is damage, never a record of another segment.
  for (std::size_t i = 6; i < 8; ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string damaged = bytes;
      damaged[i] = static_cast<char>(damaged[i] ^ (1 << bit));
      EXPECT_EQ(inspectRecord(damaged, mine).status, RecordStatus::BadChecksum)
          << "byte " << i << " bit " << bit;
    }
  }
}

TEST(RecordTest, SegmentTagsAreNeverZeroAndDifferForNeighbours) {
  std::uint16_t previous = 0;
  int repeats = 0;
  for (std::uint64_t base = 0; base < (std::uint64_t{64} << 20) * 1000; base += 64u << 20) {
    const std::uint16_t tag = segmentTag(base + 4321);
    EXPECT_NE(tag, 0);
    repeats += tag == previous ? 1 : 0;
    previous = tag;
  }
  EXPECT_EQ(repeats, 0);
}

TEST(RecordTest, VersionOneRecordsAreStillRead) {
  // A record as version 1 wrote it: no tag, CRC over bytes [4, 12) then the payload.
  std::string v1;
  ASSERT_TRUE(encodeRecord(testing::makeTestEvent(3, 4), v1).ok());
  v1[4] = 1;
  const std::uint32_t crc = crc32c(v1.data() + 16, v1.size() - 16, crc32c(v1.data() + 4, 8));
  for (int i = 0; i < 4; ++i) {
    v1[12 + i] = static_cast<char>((crc >> (8 * i)) & 0xFFu);
  }
  EXPECT_EQ(inspectRecord(v1, segmentTag(0)).status, RecordStatus::Ok);
  EXPECT_EQ(inspectRecord(v1, 0).status, RecordStatus::Ok);
  ASSERT_TRUE(decodeRecord(v1).ok());
  EXPECT_EQ(decodeRecord(v1)->event.messageId(), "m-3-4");

  std::string tagged_v1 = v1;  // version 1 had no tag: non-zero bytes there are not version 1
  tagged_v1[6] = 1;
  EXPECT_EQ(inspectRecord(tagged_v1, 1).status, RecordStatus::BadVersion);
}

TEST(RecordTest, RefusesOversizedEvent) {
  sdk::EventHeader h;
  h.message_id = "big";
  const sdk::Event huge(h, std::string(kMaxPayloadBytes + 1, 'x'));
  std::string out = "keep";
  sdk::Status st = encodeRecord(huge, out);
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, sdk::ErrorCode::InvalidArgument);
  EXPECT_EQ(out, "keep");
}

}  // namespace
}  // namespace junction::core::queue

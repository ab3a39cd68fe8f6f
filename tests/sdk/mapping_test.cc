// FieldMapping: parsing (with every problem named by field), defaults merged with overrides,
// paths tried in order, transforms, constants, nested output fields.

#include "junction/sdk/mapping.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "junction/sdk/crypto.h"

namespace junction::sdk {
namespace {

namespace json = boost::json;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;

json::object obj(std::string_view text) { return json::parse(text).as_object(); }

const json::object kEvent = obj(R"({
  "type": "identify", "userId": "u1",
  "traits": {"email": "  Ada@Example.COM ", "first_name": "Ada", "age": 36, "vip": "yes",
             "birthday": "1990-04-01", "score": "12.5", "empty": "", "tags": ["a", "b"]},
  "context": {"traits": {"email": "ctx@example.com"}, "page": {"url": "https://x.test/p"}},
  "properties": {"sku": "S-1", "price": 9.5},
  "timestamp": "2026-11-28T15:11:01.123Z"
})");

FieldMapping parseOk(std::string_view defaults, std::string_view overrides = "{}") {
  auto m = FieldMapping::parse(obj(defaults), obj(overrides));
  EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().message);
  return m.ok() ? std::move(m.value()) : FieldMapping{};
}

TEST(FieldMappingTest, PathsDefaultsAndConstants) {
  auto m = parseOk(R"({
    "FNAME": "traits.first_name",
    "LNAME": {"from": "traits.last_name", "default": "-"},
    "URL": "context.page.url",
    "SOURCE": {"value": "junction"},
    "MISSING": "traits.nope",
    "EMPTY": "traits.empty",
    "TAGS": "traits.tags"
  })");
  auto out = m.apply(kEvent);
  EXPECT_EQ(json::serialize(out),
            R"({"FNAME":"Ada","LNAME":"-","URL":"https://x.test/p","SOURCE":"junction","TAGS":["a","b"]})");
}

TEST(FieldMappingTest, FirstPathWithAValueWins) {
  auto m = parseOk(R"({"EMAIL": {"from": ["traits.nope", "traits.empty", "context.traits.email"]}})");
  EXPECT_EQ(json::serialize(m.apply(kEvent)), R"({"EMAIL":"ctx@example.com"})");
}

TEST(FieldMappingTest, Transforms) {
  auto m = parseOk(R"({
    "email": {"from": "traits.email", "transform": ["trim", "lowercase"]},
    "email_sha256": {"from": "traits.email", "transform": ["trim", "lowercase", "sha256"]},
    "email_md5": {"from": "traits.email", "transform": ["trim", "lowercase", "md5"]},
    "upper": {"from": "properties.sku", "transform": "uppercase"},
    "age": {"from": "traits.age", "transform": "string"},
    "score": {"from": "traits.score", "transform": "number"},
    "vip": {"from": "traits.vip", "transform": "boolean"},
    "born": {"from": "traits.birthday", "transform": "date:%m/%d/%Y"},
    "day": {"from": "timestamp", "transform": "date:%Y-%m-%d %H:%M"},
    "tags": {"from": "traits.tags", "transform": "lowercase"}
  })");
  auto out = m.apply(kEvent);
  EXPECT_EQ(out.at("email"), "ada@example.com");
  EXPECT_EQ(out.at("email_sha256"), json::value(sha256Hex("ada@example.com")));
  EXPECT_EQ(out.at("email_md5"), json::value(md5Hex("ada@example.com")));
  EXPECT_EQ(out.at("upper"), "S-1");
  EXPECT_EQ(out.at("age"), "36");
  EXPECT_EQ(out.at("score"), 12.5);
  EXPECT_EQ(out.at("vip"), true);
  EXPECT_EQ(out.at("born"), "04/01/1990");
  EXPECT_EQ(out.at("day"), "2026-11-28 15:11");
  EXPECT_EQ(out.at("tags"), json::parse(R"(["a","b"])"));  // arrays pass text transforms
}

TEST(FieldMappingTest, AValueThatATransformCannotTakeIsNoValue) {
  auto m = parseOk(R"({
    "n": {"from": "traits.first_name", "transform": "number", "default": 0},
    "b": {"from": "traits.first_name", "transform": "boolean"},
    "d": {"from": "traits.first_name", "transform": "date:%Y"}
  })");
  EXPECT_EQ(json::serialize(m.apply(kEvent)), R"({"n":0})");
}

TEST(FieldMappingTest, NestedOutputFields) {
  auto m = parseOk(R"({"merge_fields.FNAME": "traits.first_name", "merge_fields.SKU": "properties.sku",
                       "email_address": "traits.email"})");
  EXPECT_EQ(json::serialize(m.apply(kEvent)),
            R"({"merge_fields":{"FNAME":"Ada","SKU":"S-1"},"email_address":"  Ada@Example.COM "})");
}

TEST(FieldMappingTest, OverridesReplaceAddAndDropDefaults) {
  auto m = parseOk(R"({"FNAME": "traits.first_name", "PHONE": "traits.phone", "SKU": "properties.sku"})",
                   R"({"FNAME": {"value": "X"}, "PHONE": null, "PRICE": "properties.price"})");
  EXPECT_EQ(json::serialize(m.apply(kEvent)), R"({"FNAME":"X","SKU":"S-1","PRICE":9.5E0})");
  ASSERT_EQ(m.rules().size(), 3u);
  EXPECT_EQ(m.rules()[0].field, "FNAME");
  EXPECT_EQ(m.rules()[2].field, "PRICE");
}

TEST(FieldMappingTest, EveryProblemIsNamedByField) {
  std::vector<OptionError> errors;
  auto m = FieldMapping::parse({}, obj(R"({
    "A": 5,
    "B": {"from": "traits.x", "transform": "shout"},
    "C": {"from": "traits..x"},
    "D": {"frm": "traits.x"},
    "E": {"from": "traits.x", "value": 1},
    "F": {"transform": "trim"},
    "G": {"from": "traits.x", "transform": "date:"},
    "OK": "traits.x"
  })"), &errors);
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(m.error().message, HasSubstr("mapping.A"));
  EXPECT_THAT(errors,
              ElementsAre(Field(&OptionError::key, "mapping.A"), Field(&OptionError::key, "mapping.B"),
                          Field(&OptionError::key, "mapping.C"), Field(&OptionError::key, "mapping.D"),
                          Field(&OptionError::key, "mapping.D"), Field(&OptionError::key, "mapping.E"),
                          Field(&OptionError::key, "mapping.F"), Field(&OptionError::key, "mapping.G")));
  EXPECT_THAT(errors[1].message, HasSubstr("unknown transform `shout`"));
  EXPECT_THAT(errors[3].message, HasSubstr("unknown key `frm`"));
  EXPECT_THAT(errors[5].message, HasSubstr("exclude each other"));
  EXPECT_EQ(FieldMapping::check({}, obj(R"({"OK": "traits.x"})")).size(), 0u);
  EXPECT_EQ(FieldMapping::check({}, obj(R"({"X": 1})"), "fields").at(0).key, "fields.X");
}

TEST(FieldMappingTest, EmailOfAndFirstString) {
  EXPECT_EQ(emailOf(kEvent), "Ada@Example.COM");
  EXPECT_EQ(emailOf(obj(R"({"context":{"traits":{"email":"c@x.test"}}})")), "c@x.test");
  EXPECT_EQ(emailOf(obj(R"({"traits":{"email":" "},"properties":{"email":"p@x.test"}})")), "p@x.test");
  EXPECT_FALSE(emailOf(obj(R"({"traits":{"email":5}})")).has_value());
  EXPECT_EQ(firstString(kEvent, {"properties.sku", "userId"}), "S-1");
}

}  // namespace
}  // namespace junction::sdk

namespace junction::sdk {
namespace {

// Inbound mapping (webhook source, CSV import): a received document to a Segment event.
TEST(InboundMappingTest, WholeDocumentTimesAndEventFields) {
  auto mapping = FieldMapping::parse(boost::json::parse(R"({
    "type": {"value": "track"},
    "event": {"from": "topic", "default": "Order Created"},
    "userId": "customer.id",
    "timestamp": {"from": "created_at", "transform": "iso8601"},
    "originalTimestamp": {"from": "created", "transform": "iso8601"},
    "properties": "$",
    "traits.email": "customer.email"
  })").as_object());
  ASSERT_TRUE(mapping.ok()) << mapping.error().message;
  EXPECT_TRUE(checkInboundMapping(*mapping).empty());
  const auto payload = boost::json::parse(R"({"id": 7, "customer": {"id": 42, "email": "a@x.test"},
    "created_at": "2026-11-28T16:11:01+01:00", "created": 1764342661})").as_object();
  const auto event = mapping->apply(payload);
  EXPECT_EQ(event.at("type"), "track");
  EXPECT_EQ(event.at("event"), "Order Created");
  EXPECT_EQ(event.at("userId"), 42);
  EXPECT_EQ(event.at("timestamp"), "2026-11-28T15:11:01.000Z");
  EXPECT_EQ(event.at("originalTimestamp"), "2025-11-28T15:11:01.000Z");
  EXPECT_EQ(event.at("properties"), boost::json::value(payload));
  EXPECT_EQ(event.at("traits").at("email"), "a@x.test");

  // Milliseconds and numeric text are times too; text that is neither is no value.
  auto ms = FieldMapping::parse(boost::json::parse(
      R"({"timestamp": {"from": "t", "transform": "iso8601"}})").as_object());
  ASSERT_TRUE(ms.ok());
  EXPECT_EQ(ms->apply(boost::json::parse(R"({"t": 1764342661500})").as_object()).at("timestamp"),
            "2025-11-28T15:11:01.500Z");
  EXPECT_EQ(ms->apply(boost::json::parse(R"({"t": "1764342661"})").as_object()).at("timestamp"),
            "2025-11-28T15:11:01.000Z");
  EXPECT_FALSE(ms->apply(boost::json::parse(R"({"t": "yesterday"})").as_object()).contains("timestamp"));
}

TEST(InboundMappingTest, AFieldThatIsNotAnEventFieldIsNamed) {
  auto mapping = FieldMapping::parse(boost::json::parse(
      R"({"user_id": "customer.id", "properties.total": "total"})").as_object());
  ASSERT_TRUE(mapping.ok());
  const auto errors = checkInboundMapping(*mapping, "mapping");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].key, "mapping.user_id");
  EXPECT_THAT(errors[0].message, ::testing::HasSubstr("not a field of a Segment event"));
}

}  // namespace
}  // namespace junction::sdk

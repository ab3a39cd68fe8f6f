#pragma once

// What the `sfmc` destination sends and how it reads the answers, without a network: events to
// data extension rows and journey entry events, request bodies, and the vendor's responses
// (token grants, rowset errors, delete operations). The destination puts these on the wire.

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "junction/sdk/destination.h"
#include "junction/sdk/event.h"
#include "junction/sdk/mapping.h"
#include "junction/sdk/result.h"
#include "sfmc_config.h"

namespace junction::plugins::sfmc {

// What deliver() does with one event.
struct Planned {
  enum class Action {
    Row,      // identify: a data extension row (`row` = {"keys":{...},"values":{...}})
    Journey,  // a track event named in `journeys`: a journey entry event (`body`)
    Skip,     // nothing to send for this type (`type` names it, for the skipped metric)
    Fail,     // cannot be sent (`reason`)
  };
  Action action = Action::Skip;
  boost::json::object row;   // Row
  std::string body;          // Row: the row's JSON text; Journey: the request body
  std::string type;          // Skip: the event type ("page", "track", ...)
  std::string reason;        // Fail
  // With audiences_data_extension, whatever the action but Fail: the audience membership rows
  // the event states (each a Row: {"keys":{"ContactKey","Audience"},"values":{"Member",
  // "UpdatedAt"}}), sent to that data extension before journey entry events.
  std::vector<Planned> audience_rows;
};

// Column names of the audience membership data extension (audiences_data_extension).
inline constexpr std::string_view kAudienceContactKeyColumn = "ContactKey";
inline constexpr std::string_view kAudienceColumn = "Audience";
inline constexpr std::string_view kMemberColumn = "Member";
inline constexpr std::string_view kUpdatedAtColumn = "UpdatedAt";

// A track "Audience Entered" or "Audience Exited".
bool isAudienceTrack(const sdk::Event& event);

// The audience memberships an event states: an "Audience Entered" track its properties.audience
// (true), "Audience Exited" (false); an identify each entry of context.junction.audiences whose
// value is a boolean. Empty otherwise (and for an "Audience …" track without properties.audience).
std::vector<std::pair<std::string, bool>> audienceMemberships(const sdk::Event& event);

// The audience membership row of `contact_key` in `audience`, stamped `timestamp_ms`.
boost::json::object audienceRow(const std::string& contact_key, const std::string& audience,
                                bool member, std::int64_t timestamp_ms);

// Turns events into rows and entry events. Built once from a validated config; immutable and
// thread-safe afterwards.
class SfmcMapper {
 public:
  // InvalidArgument when the mapping does not parse (validate() reports it first).
  static sdk::Result<SfmcMapper> make(const SfmcConfig& config);

  Planned plan(const sdk::Event& event) const;
  // The journey entry-event definition key for a track event: "<event>: <properties.audience>"
  // for an audience track when `journeys` names it, else "<event>"; nullptr when neither.
  const boost::json::value* journeyFor(const sdk::Event& event) const;

  // The contact key of `event` (the `contact_key` path, as text), or nullopt when absent/empty.
  std::optional<std::string> contactKey(const boost::json::object& event) const;

 private:
  SfmcMapper() = default;

  sdk::FieldMapping mapping_;
  std::string data_extension_;
  std::string key_field_;
  std::string contact_key_;
  boost::json::object journeys_;
  std::string audiences_data_extension_;

  Planned planMain(const sdk::Event& event) const;
};

// A journey entry event's `Data`: the event's properties, nested objects flattened into
// "parent_child" names, arrays as their JSON text, nulls left out; plus EmailAddress (the
// person's email) when known and not already a property.
boost::json::object journeyData(const boost::json::object& event);

// {"grant_type":"client_credentials","client_id":...,"client_secret":...[,"scope"][,"account_id"]}
// (account_id as a number when it is all digits, as the vendor's MIDs are).
std::string tokenRequestBody(const SfmcConfig& config);

// "{auth_url without trailing '/'}/v2/token".
std::string tokenUrl(std::string_view auth_url);

// "hub/v1/dataevents/key:{data_extension, percent-encoded}/rowset", relative to the REST base.
std::string rowsetPath(std::string_view data_extension);
inline constexpr std::string_view kJourneyEventPath = "interaction/v1/events";
inline constexpr std::string_view kDeletePath = "contacts/v1/contacts/actions/delete?type=keys";

// {"ContactTypeId":0,"values":["<key>"],"DeleteOperationType":"ContactAndAttributes"}
std::string deleteRequestBody(std::string_view contact_key);

// Splits rows (each given as its JSON text) into consecutive groups of at most `max_rows` rows
// whose rowset body ("[row,row,...]") stays within `max_bytes`. A row too large on its own is
// alone in its group (the caller refuses it). Returns [begin, end) index pairs.
std::vector<std::pair<std::size_t, std::size_t>> chunkRows(std::span<const std::string> rows,
                                                           std::size_t max_rows,
                                                           std::size_t max_bytes);

// "[row,row,...]" from rows' JSON texts.
std::string rowsetBody(std::span<const std::string> rows);

// A token response: access_token, expires_in and rest_instance_url (which ends with '/').
struct TokenGrant {
  std::string access_token;
  std::chrono::seconds expires_in{0};
  std::string rest_instance_url;
};
// InvalidArgument naming what is missing or wrong (never the token itself).
sdk::Result<TokenGrant> parseTokenResponse(std::string_view body);

// The vendor's error text from an error body: "message (errorcode N)" for the REST shape,
// "error: error_description" for the token endpoint's, the result messages of a contacts API
// answer; nullopt when the body has none of these.
std::optional<std::string> vendorError(std::string_view body);

// One problem of a refused rowset (its `additionalErrors`), and the column and value it names
// when it says ("The value for column [EmailAddress] is not a valid email address: x").
struct RowsetProblem {
  std::string message;
  std::optional<std::string> column;
  std::optional<std::string> value;
};
// The problems a 400 rowset answer lists (empty when it lists none).
std::vector<RowsetProblem> rowsetProblems(std::string_view body);

// Which rows a problem concerns: those holding `value` in `column` (in keys or values) when it
// names both, those with a value for `column` when it names only the column. Empty when it
// names neither (the problem is about the request as a whole).
std::vector<std::size_t> rowsConcerned(const RowsetProblem& problem,
                                       std::span<const boost::json::object* const> rows);

// A contact delete answer: the operation id when it was initiated, else the vendor's reason.
struct DeleteAnswer {
  std::optional<std::int64_t> operation_id;
  std::string error;  // when not initiated
};
// InvalidArgument when the body is not the contacts API's answer.
sdk::Result<DeleteAnswer> parseDeleteResponse(std::string_view body);

}  // namespace junction::plugins::sfmc

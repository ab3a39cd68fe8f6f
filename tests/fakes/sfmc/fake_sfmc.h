#pragma once

// A fake Salesforce Marketing Cloud (REST) on 127.0.0.1, for the sfmc destination's tests, the
// end-to-end tests and the benchmarks. It implements the parts of the vendor's published contract
// that the plugin uses, field by field:
//
//   POST /v2/token                                      OAuth 2.0 client credentials (JSON body:
//        grant_type, client_id, client_secret, account_id?) -> access_token, token_type,
//        expires_in, scope, soap_instance_url, rest_instance_url (both this server, with a '/').
//        Errors as the vendor writes them: 400 {"error":"unsupported_grant_type"|
//        "invalid_request",...}, 401 {"error":"invalid_client","error_description":...}.
//   POST /hub/v1/dataevents/key:{key}/rowset            data extension rows upsert: a JSON array
//        of {"keys":{...},"values":{...}}. All or nothing, as the synchronous API is: any bad row
//        fails the request with 400 {"message":"Unable to save rows for data extension ...",
//        "errorcode":10006,"documentation":"","additionalErrors":[{"message":...},...]}, one
//        additional error per problem, naming the column and the value ("The value for column
//        [EmailAddress] is not a valid email address: x"). 200 echoes the rows.
//   POST /interaction/v1/events                         journey entry event: ContactKey and
//        EventDefinitionKey (required strings), Data (optional object) -> 201 {"eventInstanceId"}.
//   POST /contacts/v1/contacts/actions/delete?type=keys contact delete by keys: values (array of
//        contact keys), DeleteOperationType ("ContactAndAttributes"), ContactTypeId (optional
//        integer) -> 200 {"operationInitiated":true,"operationID":N,...}; asynchronous at the
//        vendor, recorded here as an operation.
//
// Every REST call needs `Authorization: Bearer <a token this server issued and that has not
// expired>`; otherwise 401 {"documentation":"...","errorcode":0,"message":"Not Authorized"}.
// With `requests_per_second` set, REST calls beyond that rate get 429 with Retry-After.
// Payloads over 5 MB get 413. Unknown paths get 404 in the REST error shape.
//
// Thread-safety: every public method may be called from any thread while requests are served.
// Requests are handled on the server's I/O thread; keep tests' waits on the test thread.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "tests/fakes/common/fake_vendor_server.h"

namespace junction::tests::fakes {

// A data extension column's type, as Marketing Cloud defines them.
enum class SfmcColumnType { Text, Number, Decimal, Boolean, Date, EmailAddress, Phone };

struct SfmcColumn {
  SfmcColumnType type = SfmcColumnType::Text;
  std::size_t max_length = 4000;  // Text, EmailAddress (254 at most), Phone
  bool nullable = true;
};

// A data extension the fake knows, by external key.
struct SfmcDataExtension {
  std::vector<std::string> primary_keys{"ContactKey"};  // every row's `keys` must name these
  // The other columns; a value for a column that is neither here nor a primary key is refused.
  // Empty: any column is accepted as Text (a schema-less data extension, for benchmarks).
  std::map<std::string, SfmcColumn> columns;
};

// What the fake accepts and how it behaves (FakeSfmc::Options).
struct FakeSfmcOptions {
  // The installed package's credentials the token endpoint accepts.
  std::string client_id = "fake-sfmc-client-id";
  std::string client_secret = "fake-sfmc-client-secret";
  // The business unit's MID. When set, a token request naming another account_id is refused
  // (invalid_client), as the vendor refuses a package not authorized for that account.
  std::string account_id;
  // expires_in of issued tokens (the vendor's are about 18 minutes).
  std::chrono::seconds token_ttl{1080};
  double requests_per_second = 0;  // REST calls (not /v2/token); 0 = no limit
  std::chrono::seconds retry_after{1};  // Retry-After of a 429
  // Known data extensions by external key. Empty: any key is accepted, as a schema-less data
  // extension whose primary key is whatever each row's `keys` name.
  std::map<std::string, SfmcDataExtension> data_extensions;
  // Known journey entry-event definition keys. Empty: any key is accepted.
  std::set<std::string> event_definition_keys;
  // Test hook (the vendor documents no row limit, only the 5 MB payload and a best practice
  // of 50 rows): a rowset with more rows is refused with 400. 0 = no limit.
  std::size_t max_rows_per_request = 0;
  std::size_t max_payload_bytes = 5 * 1024 * 1024;
};

class FakeSfmc {
 public:
  using ColumnType = SfmcColumnType;
  using Column = SfmcColumn;
  using DataExtension = SfmcDataExtension;
  using Options = FakeSfmcOptions;

  // A row as stored: its primary key values and its other columns' values.
  struct Row {
    boost::json::object keys;
    boost::json::object values;
  };

  struct JourneyEvent {
    std::string event_instance_id;
    std::string contact_key;
    std::string event_definition_key;
    boost::json::object data;
  };

  struct DeleteOperation {
    std::int64_t operation_id = 0;
    std::vector<std::string> contact_keys;
    std::string delete_operation_type;
    std::optional<std::int64_t> contact_type_id;
  };

  // Listens on 127.0.0.1, ephemeral port. Throws when it cannot listen.
  explicit FakeSfmc(Options options = {});
  ~FakeSfmc();
  FakeSfmc(const FakeSfmc&) = delete;
  FakeSfmc& operator=(const FakeSfmc&) = delete;

  // "http://127.0.0.1:PORT" (no trailing slash): the plugin's `auth_url`. The token response's
  // rest_instance_url is the same server, with a trailing slash.
  std::string baseUrl() const;

  // --- fault injection ---
  // The next `n` requests (those whose path starts with `path_prefix`, when given) get this
  // answer instead of the normal one, before auth and validation (429 with Retry-After, 5xx,
  // 401, garbage bodies...). Queued rules apply in the order added.
  void failNext(std::size_t n, int status, std::string body,
                std::vector<std::pair<std::string, std::string>> headers = {},
                std::string path_prefix = "");
  // Answers every request this much later (0 = at once).
  void setDelay(std::chrono::milliseconds delay);
  // While down, every connection is reset after its request is read (a vendor outage).
  void setDown(bool down);
  // Every token issued so far stops being valid: the next REST call with one gets 401.
  void expireTokens();

  // --- what was received ---
  std::vector<sdk::testing::RecordedRequest> requests() const;
  std::size_t requestCount() const;
  bool waitForRequests(std::size_t n, std::chrono::milliseconds timeout) const;
  void clearRequests();

  // --- state ---
  // Rows of a data extension, in first-insertion order.
  std::vector<Row> rows(const std::string& data_extension) const;
  std::size_t rowCount(const std::string& data_extension) const;
  // The row whose single primary key column holds `key` (as text), or nullopt.
  std::optional<Row> row(const std::string& data_extension, const std::string& key) const;
  std::vector<JourneyEvent> journeyEvents() const;
  std::vector<DeleteOperation> deleteOperations() const;
  std::size_t tokensIssued() const;
  // REST calls refused with 429 by the rate limit (not by failNext).
  std::size_t rateLimitedCount() const;

 private:
  struct StoredDataExtension {
    std::map<std::string, std::size_t> index;  // serialized keys -> position in rows
    std::vector<Row> rows;
  };

  sdk::HttpResponse handle(const sdk::testing::RecordedRequest& request);
  sdk::HttpResponse token(const sdk::testing::RecordedRequest& request);
  sdk::HttpResponse rowset(const sdk::testing::RecordedRequest& request, std::string key);
  sdk::HttpResponse journeyEvent(const sdk::testing::RecordedRequest& request);
  sdk::HttpResponse deleteContacts(const sdk::testing::RecordedRequest& request);
  bool authorized(const sdk::testing::RecordedRequest& request);  // mutex_ held
  bool takeRateToken();                                            // mutex_ held

  const Options options_;
  mutable std::mutex mutex_;
  std::map<std::string, std::chrono::steady_clock::time_point> tokens_;  // guarded by mutex_
  std::size_t tokens_issued_ = 0;                           // guarded by mutex_
  std::size_t rate_limited_ = 0;                            // guarded by mutex_
  double bucket_ = 0;                                       // guarded by mutex_
  std::chrono::steady_clock::time_point bucket_at_;         // guarded by mutex_
  std::map<std::string, StoredDataExtension> stored_;       // guarded by mutex_
  std::vector<JourneyEvent> journey_events_;                // guarded by mutex_
  std::vector<DeleteOperation> delete_operations_;          // guarded by mutex_
  std::int64_t next_operation_id_ = 2038;                   // guarded by mutex_

  FakeVendorServer server_;  // last: stopped first, before the state it uses
};

const char* toString(SfmcColumnType type) noexcept;

}  // namespace junction::tests::fakes

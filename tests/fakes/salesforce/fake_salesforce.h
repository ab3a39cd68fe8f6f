#pragma once

// A fake Salesforce (OAuth 2.0 client credentials + REST API) on 127.0.0.1, for the salesforce
// destination's and source's tests, the end-to-end tests and the benchmarks. It implements the
// parts of the vendor's published contract that the plugins use, field by field; one server is
// both the login URL and the instance URL its tokens name.
//
//   POST /services/oauth2/token                         client credentials, form-encoded
//        (application/x-www-form-urlencoded: grant_type=client_credentials, client_id,
//        client_secret) -> 200 {"access_token","signature","scope","instance_url","id",
//        "token_type":"Bearer","issued_at"} (no expires_in: the session lasts the org's session
//        timeout). Errors as Salesforce writes them, all 400: {"error":"unsupported_grant_type",
//        "error_description":"grant type not supported"}, {"error":"invalid_client_id",
//        "error_description":"client identifier invalid"}, {"error":"invalid_client",
//        "error_description":"invalid client credentials"}.
//   Under /services/data/vNN.N/ (NN.N from 20.0 to 66.0; the composite resource from 46.0):
//   PATCH  sobjects/{object}/{field}/{value}            upsert by external id: 201 {"id",
//        "success":true,"errors":[],"created":true}; an update answers 200 with created:false
//        (204 with no body before API version 46.0). 400 [{"message","errorCode","fields"}] for
//        an unknown field (INVALID_FIELD), a bad email (INVALID_EMAIL_ADDRESS), a value too long
//        (STRING_TOO_LONG), a required field missing on create (REQUIRED_FIELD_MISSING); 404
//        NOT_FOUND for an unknown object or a field that is not an external id.
//   PATCH  composite/sobjects/{object}/{externalIdField}  sObject Collections upsert: {"allOrNone",
//        "records":[{"attributes":{"type"},...}]}, at most 200 records (else 400
//        EXCEEDED_ID_LIMIT) -> 200 with one result per record, in order: {"id","success":true,
//        "errors":[],"created"} or {"success":false,"errors":[{"statusCode","message",
//        "fields"}]}; with allOrNone, one failure rolls back all (the others get
//        ALL_OR_NONE_OPERATION_ROLLED_BACK).
//   DELETE sobjects/{object}/{field}/{value}, sobjects/{object}/{id}   -> 204; 404 NOT_FOUND
//        when no record matches, ENTITY_IS_DELETED for an id deleted already.
//   GET    sobjects/{object}/{field}/{value}, sobjects/{object}/{id}   -> the record.
//   GET    query?q=SOQL                                 SELECT fields FROM object [WHERE
//        conditions: = != < <= > >=, AND, OR, parentheses; datetimes unquoted as documented,
//        YYYY-MM-DDThh:mm:ss followed by Z or an offset; strings quoted] [ORDER BY field [ASC|DESC], ...] [LIMIT n] -> {"totalSize","done",
//        "nextRecordsUrl"?,"records":[{"attributes":{"type","url"},...}]}; pages of 2000 records
//        (Sforce-Query-Options: batchSize=200..2000, or the fake's query_batch_size) through
//        nextRecordsUrl = /services/data/vNN.N/query/01g...-2000, a snapshot taken at the query.
//        400 MALFORMED_QUERY / INVALID_FIELD, INVALID_QUERY_LOCATOR for an unknown locator.
//
// Every API call needs `Authorization: Bearer <a token this server issued, not expired>`;
// otherwise 401 [{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}].
// With `api_request_limit` set, calls beyond it get 403 [{"message":"TotalRequests Limit
// exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]; every API answer carries
// `Sforce-Limit-Info: api-usage=USED/LIMIT`. Records carry Id, CreatedDate, LastModifiedDate and
// SystemModstamp ("2026-12-05T07:41:27.000+0000", whole seconds, as Salesforce stores them).
//
// Thread-safety: every public method may be called from any thread while requests are served.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "tests/fakes/common/fake_vendor_server.h"

namespace junction::tests::fakes {

// An sObject type the fake knows.
struct SalesforceObjectType {
  std::string key_prefix;  // the first 3 characters of its record ids: 003 Contact, 00Q Lead
  // Writable fields and their maximum length (0: not text, any JSON scalar).
  std::map<std::string, std::size_t> fields;
  std::set<std::string> external_id_fields;  // among `fields`
  std::set<std::string> email_fields;        // among `fields`: must look like an email
  std::vector<std::string> required;         // on create
};

struct FakeSalesforceOptions {
  // The connected app's credentials the token endpoint accepts.
  std::string client_id = "fake-sf-client-id";
  std::string client_secret = "fake-sf-client-secret";
  // How long an issued token works (the org's session timeout).
  std::chrono::seconds session_timeout{7200};
  // API requests allowed (the org's 24-hour allocation); 0 = no limit.
  std::uint64_t api_request_limit = 0;
  // Records in a query page when the request does not ask (Salesforce: 2000).
  std::size_t query_batch_size = 2000;
  // Known objects: Contact and Lead, each with the external id field Junction_Id__c.
  std::map<std::string, SalesforceObjectType> objects = defaultObjects();

  static std::map<std::string, SalesforceObjectType> defaultObjects();
};

class FakeSalesforce {
 public:
  using Options = FakeSalesforceOptions;

  struct Record {
    std::string object;
    std::string id;
    boost::json::object fields;  // writable fields only
    std::int64_t created_ms = 0;
    std::int64_t modstamp_ms = 0;  // SystemModstamp (= LastModifiedDate)
  };

  explicit FakeSalesforce(Options options = {});
  ~FakeSalesforce();
  FakeSalesforce(const FakeSalesforce&) = delete;
  FakeSalesforce& operator=(const FakeSalesforce&) = delete;

  // "http://127.0.0.1:PORT": the plugins' login_url, and the instance_url of the tokens.
  std::string baseUrl() const;

  // --- fault injection ---
  void failNext(std::size_t n, int status, std::string body,
                std::vector<std::pair<std::string, std::string>> headers = {},
                std::string path_prefix = "");
  void setDelay(std::chrono::milliseconds delay);
  void setDown(bool down);
  // Every token issued so far stops working: the next API call with one gets 401.
  void expireTokens();
  // Changes the API request allocation (0 = none) and forgets the requests counted so far.
  void setApiRequestLimit(std::uint64_t limit);

  // --- the org's clock: SystemModstamp of what changes next ---
  // By default the wall clock, in whole seconds. Once set, the clock stays until set again.
  void setNow(std::int64_t epoch_ms);

  // --- data, as the org's users would change it ---
  // Creates a record with these fields (not validated) and returns its id.
  std::string putRecord(const std::string& object, boost::json::object fields);
  // Changes fields of a record (SystemModstamp moves). False when there is no such record.
  bool updateRecord(const std::string& object, const std::string& id, boost::json::object fields);

  // --- what was received and what is stored ---
  std::vector<sdk::testing::RecordedRequest> requests() const;
  std::size_t requestCount() const;
  bool waitForRequests(std::size_t n, std::chrono::milliseconds timeout) const;
  void clearRequests();
  std::vector<Record> records(const std::string& object) const;  // in creation order
  std::optional<Record> record(const std::string& object, const std::string& id) const;
  std::optional<Record> recordByExternalId(const std::string& object, const std::string& field,
                                           const std::string& value) const;
  std::vector<std::string> deletedIds() const;
  std::size_t tokensIssued() const;
  std::uint64_t apiRequestsCounted() const;
  // API calls answered REQUEST_LIMIT_EXCEEDED (not failNext's).
  std::size_t limitRefusals() const;

  // Test hook (the handler). Public so that tests of the parser can run a query directly.
  sdk::HttpResponse handle(const sdk::testing::RecordedRequest& request);

 private:
  struct Query;
  struct Stored;

  sdk::HttpResponse token(const sdk::testing::RecordedRequest& request);
  sdk::HttpResponse api(const sdk::testing::RecordedRequest& request, double version,
                        const std::string& version_text, std::string_view rest);
  sdk::HttpResponse upsertOne(const sdk::testing::RecordedRequest& request, double version,
                              const std::string& object, const std::string& field,
                              const std::string& value);
  sdk::HttpResponse upsertMany(const sdk::testing::RecordedRequest& request,
                               const std::string& object, const std::string& field);
  sdk::HttpResponse remove(const std::string& object, const std::string& field,
                           const std::string& value);
  sdk::HttpResponse get(const std::string& version_text, const std::string& object,
                        const std::string& field, const std::string& value);
  sdk::HttpResponse query(const sdk::testing::RecordedRequest& request,
                          const std::string& version_text);
  sdk::HttpResponse queryMore(const sdk::testing::RecordedRequest& request,
                              const std::string& locator);

  // mutex_ held for the rest.
  std::int64_t nowMs() const;
  std::string newId(const SalesforceObjectType& type);
  Stored* find(const std::string& object, const std::string& field, const std::string& value);
  // Validation errors of `fields` for `type` (create: required fields too), as
  // {"statusCode"|"errorCode", "message", "fields"} objects keyed by `code_key`.
  boost::json::array problems(const std::string& object, const SalesforceObjectType& type,
                              const boost::json::object& fields, bool create,
                              std::string_view code_key) const;
  // Writes `fields` into the record for (field = value), creating it; true when created.
  std::pair<std::string, bool> write(const std::string& object, const SalesforceObjectType& type,
                                     const std::string& field, const std::string& value,
                                     const boost::json::object& fields);
  boost::json::object render(const Stored& stored, const std::vector<std::string>& select,
                             const std::string& version_text) const;

  const Options options_;
  mutable std::mutex mutex_;
  std::map<std::string, std::chrono::steady_clock::time_point> tokens_;  // guarded by mutex_
  std::size_t tokens_issued_ = 0;                                         // guarded by mutex_
  std::uint64_t api_limit_ = 0;                                           // guarded by mutex_
  std::uint64_t api_used_ = 0;                                            // guarded by mutex_
  std::size_t limit_refusals_ = 0;                                        // guarded by mutex_
  std::optional<std::int64_t> now_ms_;                                    // guarded by mutex_
  std::uint64_t next_id_ = 1;                                             // guarded by mutex_
  std::vector<std::unique_ptr<Stored>> stored_;                           // guarded by mutex_
  std::map<std::string, Stored*> by_id_;                                  // guarded by mutex_
  std::vector<std::string> deleted_;                                      // guarded by mutex_
  std::map<std::string, std::unique_ptr<Query>> locators_;                // guarded by mutex_
  std::uint64_t next_locator_ = 1;                                        // guarded by mutex_

  FakeVendorServer server_;  // last: stopped first, before the state it uses
};

}  // namespace junction::tests::fakes

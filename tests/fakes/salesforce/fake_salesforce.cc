#include "tests/fakes/salesforce/fake_salesforce.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <regex>

#include <boost/json.hpp>

#include "junction/sdk/event.h"
#include "junction/sdk/json.h"
#include "junction/sdk/text.h"

namespace junction::tests::fakes {

namespace json = boost::json;
using sdk::HttpResponse;
using sdk::testing::RecordedRequest;

namespace {

constexpr std::string_view kDataPrefix = "/services/data/v";
constexpr std::size_t kMaxCollectionRecords = 200;

// The REST API's error shape: an array of {"message","errorCode"[,"fields"]}.
HttpResponse apiError(int status, std::string_view code, std::string_view message,
                      json::array fields = {}) {
  json::array body{json::object{{"message", message}, {"errorCode", code}, {"fields", fields}}};
  return HttpResponse::json(status, json::serialize(body));
}

// The OAuth endpoint's error shape.
HttpResponse oauthError(std::string_view error, std::string_view description) {
  return HttpResponse::json(
      400, json::serialize(json::object{{"error", error}, {"error_description", description}}));
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool iequals(std::string_view a, std::string_view b) { return lower(a) == lower(b); }

// Salesforce's datetime text: "2026-12-05T07:41:27.000+0000".
std::string sfTime(std::int64_t ms) {
  std::string text = sdk::formatIsoTimestamp(ms);
  if (!text.empty() && text.back() == 'Z') {
    text.pop_back();
    text += "+0000";
  }
  return text;
}

bool validEmail(std::string_view s) {
  const auto at = s.find('@');
  if (at == 0 || at == std::string_view::npos || s.find('@', at + 1) != std::string_view::npos ||
      std::any_of(s.begin(), s.end(),
                  [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; })) {
    return false;
  }
  const std::string_view domain = s.substr(at + 1);
  const auto dot = domain.rfind('.');
  return dot != std::string_view::npos && dot > 0 && dot + 1 < domain.size();
}

std::string textOf(const json::value& v) {
  return v.is_string() ? std::string(v.get_string()) : json::serialize(v);
}

// "62.0" -> 62.0; nullopt unless two digits, a dot and one digit.
std::optional<double> parseVersion(std::string_view text) {
  if (text.size() != 4 || text[2] != '.' || !std::isdigit(static_cast<unsigned char>(text[0])) ||
      !std::isdigit(static_cast<unsigned char>(text[1])) ||
      !std::isdigit(static_cast<unsigned char>(text[3]))) {
    return std::nullopt;
  }
  return (text[0] - '0') * 10 + (text[1] - '0') + (text[3] - '0') / 10.0;
}

// The built-in fields every record has.
constexpr std::string_view kBuiltins[] = {"Id", "CreatedDate", "LastModifiedDate",
                                          "SystemModstamp"};

}  // namespace

// ---------------------------------------------------------------------------------------------
// SOQL, the subset the plugins use.

namespace {

struct Token {
  enum class Kind { Word, String, Symbol, End } kind = Kind::End;
  std::string text;
};

std::optional<std::vector<Token>> tokenize(std::string_view q, std::string& why) {
  std::vector<Token> out;
  std::size_t i = 0;
  while (i < q.size()) {
    const char c = q[i];
    if (std::isspace(static_cast<unsigned char>(c)) != 0) {
      ++i;
    } else if (c == '\'') {
      std::string text;
      ++i;
      bool closed = false;
      while (i < q.size()) {
        if (q[i] == '\\' && i + 1 < q.size()) {
          text.push_back(q[i + 1]);
          i += 2;
        } else if (q[i] == '\'') {
          closed = true;
          ++i;
          break;
        } else {
          text.push_back(q[i++]);
        }
      }
      if (!closed) {
        why = "unterminated string literal";
        return std::nullopt;
      }
      out.push_back({Token::Kind::String, std::move(text)});
    } else if (c == ',' || c == '(' || c == ')') {
      out.push_back({Token::Kind::Symbol, std::string(1, c)});
      ++i;
    } else if (c == '=' || c == '<' || c == '>' || c == '!') {
      std::string op(1, c);
      if (i + 1 < q.size() && (q[i + 1] == '=' || (c == '<' && q[i + 1] == '>'))) {
        op.push_back(q[i + 1]);
      }
      if (op == "!") {
        why = "unexpected token: '!'";
        return std::nullopt;
      }
      out.push_back({Token::Kind::Symbol, op});
      i += op.size();
    } else {
      const std::size_t start = i;
      while (i < q.size() && std::isspace(static_cast<unsigned char>(q[i])) == 0 &&
             std::string_view(",()=<>!'").find(q[i]) == std::string_view::npos) {
        ++i;
      }
      out.push_back({Token::Kind::Word, std::string(q.substr(start, i - start))});
    }
  }
  out.push_back({Token::Kind::End, ""});
  return out;
}

struct Condition {
  enum class Kind { Compare, And, Or } kind = Kind::Compare;
  std::string field;  // canonical
  std::string op;
  json::value literal;  // string, number, bool, null; datetimes as int64 ms in `time`
  std::optional<std::int64_t> time;
  std::vector<Condition> children;
};

struct Soql {
  std::string object;
  std::vector<std::string> select;  // canonical names
  std::optional<Condition> where;
  std::vector<std::pair<std::string, bool>> order;  // field, descending
  std::optional<std::size_t> limit;
};

bool isDateField(std::string_view field) {
  return field == "CreatedDate" || field == "LastModifiedDate" || field == "SystemModstamp";
}

class Parser {
 public:
  Parser(std::vector<Token> tokens, const std::map<std::string, SalesforceObjectType>& objects)
      : tokens_(std::move(tokens)), objects_(objects) {}

  // nullopt with `code` and `why` set on failure.
  std::optional<Soql> parse(std::string& code, std::string& why) {
    Soql soql;
    if (!keyword("SELECT")) {
      return fail(code, why, "MALFORMED_QUERY", "unexpected token: '" + peek().text + "'");
    }
    std::vector<std::string> raw_select;
    do {
      if (peek().kind != Token::Kind::Word || iequals(peek().text, "FROM")) {
        return fail(code, why, "MALFORMED_QUERY", "unexpected token: '" + peek().text + "'");
      }
      raw_select.push_back(next().text);
    } while (symbol(","));
    if (!keyword("FROM") || peek().kind != Token::Kind::Word) {
      return fail(code, why, "MALFORMED_QUERY", "unexpected token: '" + peek().text + "'");
    }
    const std::string object_raw = next().text;
    for (const auto& [name, type] : objects_) {
      if (iequals(name, object_raw)) {
        soql.object = name;
        type_ = &type;
      }
    }
    if (type_ == nullptr) {
      return fail(code, why, "INVALID_TYPE",
                  "sObject type '" + object_raw + "' is not supported.");
    }
    for (const auto& raw : raw_select) {
      auto field = canonical(raw);
      if (!field) {
        return fail(code, why, "INVALID_FIELD",
                    "No such column '" + raw + "' on entity '" + soql.object + "'.");
      }
      soql.select.push_back(*field);
    }
    if (keyword("WHERE")) {
      auto condition = orExpression(code, why);
      if (!condition) {
        return std::nullopt;
      }
      soql.where = std::move(*condition);
    }
    if (keyword("ORDER")) {
      if (!keyword("BY")) {
        return fail(code, why, "MALFORMED_QUERY", "expecting BY after ORDER");
      }
      do {
        const std::string raw = next().text;
        auto field = canonical(raw);
        if (!field) {
          return fail(code, why, "INVALID_FIELD",
                      "No such column '" + raw + "' on entity '" + soql.object + "'.");
        }
        bool descending = false;
        if (keyword("DESC")) {
          descending = true;
        } else {
          (void)keyword("ASC");
        }
        soql.order.emplace_back(*field, descending);
      } while (symbol(","));
    }
    if (keyword("LIMIT")) {
      const std::string text = next().text;
      std::size_t n = 0;
      if (std::from_chars(text.data(), text.data() + text.size(), n).ptr !=
          text.data() + text.size()) {
        return fail(code, why, "MALFORMED_QUERY", "LIMIT must be a non-negative integer");
      }
      soql.limit = n;
    }
    if (peek().kind != Token::Kind::End) {
      return fail(code, why, "MALFORMED_QUERY", "unexpected token: '" + peek().text + "'");
    }
    return soql;
  }

 private:
  std::optional<Soql> fail(std::string& code, std::string& why, std::string c, std::string w) {
    code = std::move(c);
    why = std::move(w);
    return std::nullopt;
  }
  std::optional<Condition> failCondition(std::string& code, std::string& why, std::string c,
                                         std::string w) {
    code = std::move(c);
    why = std::move(w);
    return std::nullopt;
  }

  const Token& peek() const { return tokens_[pos_]; }
  const Token& next() { return tokens_[pos_ < tokens_.size() - 1 ? pos_++ : pos_]; }
  bool keyword(std::string_view word) {
    if (peek().kind == Token::Kind::Word && iequals(peek().text, word)) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool symbol(std::string_view s) {
    if (peek().kind == Token::Kind::Symbol && peek().text == s) {
      ++pos_;
      return true;
    }
    return false;
  }

  std::optional<std::string> canonical(std::string_view raw) const {
    for (const auto b : kBuiltins) {
      if (iequals(b, raw)) {
        return std::string(b);
      }
    }
    for (const auto& [name, length] : type_->fields) {
      if (iequals(name, raw)) {
        return name;
      }
    }
    return std::nullopt;
  }

  std::optional<Condition> orExpression(std::string& code, std::string& why) {
    auto left = andExpression(code, why);
    if (!left) {
      return std::nullopt;
    }
    if (!(peek().kind == Token::Kind::Word && iequals(peek().text, "OR"))) {
      return left;
    }
    Condition any{.kind = Condition::Kind::Or};
    any.children.push_back(std::move(*left));
    while (keyword("OR")) {
      auto right = andExpression(code, why);
      if (!right) {
        return std::nullopt;
      }
      any.children.push_back(std::move(*right));
    }
    return any;
  }

  std::optional<Condition> andExpression(std::string& code, std::string& why) {
    auto left = primary(code, why);
    if (!left) {
      return std::nullopt;
    }
    if (!(peek().kind == Token::Kind::Word && iequals(peek().text, "AND"))) {
      return left;
    }
    Condition all{.kind = Condition::Kind::And};
    all.children.push_back(std::move(*left));
    while (keyword("AND")) {
      auto right = primary(code, why);
      if (!right) {
        return std::nullopt;
      }
      all.children.push_back(std::move(*right));
    }
    return all;
  }

  std::optional<Condition> primary(std::string& code, std::string& why) {
    if (symbol("(")) {
      auto inner = orExpression(code, why);
      if (!inner) {
        return std::nullopt;
      }
      if (!symbol(")")) {
        return failCondition(code, why, "MALFORMED_QUERY", "expecting a right parentheses");
      }
      return inner;
    }
    if (peek().kind != Token::Kind::Word) {
      return failCondition(code, why, "MALFORMED_QUERY",
                           "unexpected token: '" + peek().text + "'");
    }
    const std::string raw = next().text;
    auto field = canonical(raw);
    if (!field) {
      return failCondition(code, why, "INVALID_FIELD", "No such column '" + raw + "' on entity.");
    }
    static constexpr std::string_view kOps[] = {"=", "!=", "<>", "<", "<=", ">", ">="};
    if (peek().kind != Token::Kind::Symbol ||
        std::find(std::begin(kOps), std::end(kOps), peek().text) == std::end(kOps)) {
      return failCondition(code, why, "MALFORMED_QUERY",
                           "unexpected token: '" + peek().text + "'");
    }
    Condition c{.kind = Condition::Kind::Compare, .field = *field, .op = next().text};
    if (c.op == "<>") {
      c.op = "!=";
    }
    const Token literal = next();
    if (literal.kind == Token::Kind::String) {
      if (isDateField(c.field)) {
        return failCondition(code, why, "INVALID_FIELD",
                             "value of filter criterion for field '" + c.field +
                                 "' must be of type dateTime and should not be enclosed in quotes");
      }
      c.literal = json::string(literal.text);
    } else if (literal.kind == Token::Kind::Word) {
      if (iequals(literal.text, "null")) {
        c.literal = nullptr;
      } else if (iequals(literal.text, "true") || iequals(literal.text, "false")) {
        c.literal = iequals(literal.text, "true");
      } else if (isDateField(c.field)) {
        // SOQL's documented dateTime literals: YYYY-MM-DDThh:mm:ss followed by Z or +hh:mm/-hh:mm.
        static const std::regex kDateTime(
            R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2}))");
        c.time = std::regex_match(literal.text, kDateTime) ? sdk::parseIsoTimestamp(literal.text)
                                                           : std::nullopt;
        if (!c.time) {
          return failCondition(code, why, "INVALID_QUERY_FILTER_OPERATOR",
                               "line 1: invalid date-time: " + literal.text);
        }
      } else {
        double d = 0;
        if (std::from_chars(literal.text.data(), literal.text.data() + literal.text.size(), d)
                .ptr != literal.text.data() + literal.text.size()) {
          return failCondition(code, why, "MALFORMED_QUERY",
                               "unexpected token: '" + literal.text + "'");
        }
        c.literal = d;
      }
    } else {
      return failCondition(code, why, "MALFORMED_QUERY",
                           "unexpected token: '" + literal.text + "'");
    }
    return c;
  }

  std::vector<Token> tokens_;
  std::size_t pos_ = 0;
  const std::map<std::string, SalesforceObjectType>& objects_;
  const SalesforceObjectType* type_ = nullptr;
};

template <typename T>
bool compare(const T& a, const T& b, std::string_view op) {
  if (op == "=") {
    return a == b;
  }
  if (op == "!=") {
    return a != b;
  }
  if (op == "<") {
    return a < b;
  }
  if (op == "<=") {
    return a <= b;
  }
  if (op == ">") {
    return a > b;
  }
  return a >= b;
}

}  // namespace

struct FakeSalesforce::Stored {
  Record record;
};

struct FakeSalesforce::Query {
  std::string version_text;
  std::vector<json::object> rows;
  std::size_t batch = 2000;
};

namespace {

// A record's value of `field` for comparisons and sorting: time for dates, else JSON.
struct FieldValue {
  std::optional<std::int64_t> time;
  json::value value;
};

FieldValue valueOf(const FakeSalesforce::Record& r, const std::string& field) {
  if (field == "Id") {
    return {std::nullopt, json::string(r.id)};
  }
  if (field == "CreatedDate") {
    return {r.created_ms, nullptr};
  }
  if (isDateField(field)) {
    return {r.modstamp_ms, nullptr};
  }
  const json::value* v = r.fields.if_contains(field);
  return {std::nullopt, v != nullptr ? *v : json::value(nullptr)};
}

bool matches(const FakeSalesforce::Record& r, const Condition& c) {
  switch (c.kind) {
    case Condition::Kind::And:
      return std::all_of(c.children.begin(), c.children.end(),
                         [&](const Condition& x) { return matches(r, x); });
    case Condition::Kind::Or:
      return std::any_of(c.children.begin(), c.children.end(),
                         [&](const Condition& x) { return matches(r, x); });
    case Condition::Kind::Compare:
      break;
  }
  const FieldValue v = valueOf(r, c.field);
  if (c.time) {
    return v.time && compare(*v.time, *c.time, c.op);
  }
  if (c.literal.is_null() || v.value.is_null()) {
    const bool both_null = c.literal.is_null() && v.value.is_null();
    return c.op == "=" ? both_null : c.op == "!=" ? !both_null : false;
  }
  if (c.literal.is_number() && v.value.is_number()) {
    return compare(v.value.to_number<double>(), c.literal.to_number<double>(), c.op);
  }
  return compare(textOf(v.value), textOf(c.literal), c.op);
}

// Ascending order of two values; nulls first, as SOQL's default NULLS FIRST.
int order(const FieldValue& a, const FieldValue& b) {
  if (a.time || b.time) {
    const auto x = a.time.value_or(INT64_MIN);
    const auto y = b.time.value_or(INT64_MIN);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.value.is_null() || b.value.is_null()) {
    return a.value.is_null() == b.value.is_null() ? 0 : a.value.is_null() ? -1 : 1;
  }
  if (a.value.is_number() && b.value.is_number()) {
    const double x = a.value.to_number<double>();
    const double y = b.value.to_number<double>();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  const std::string x = textOf(a.value);
  const std::string y = textOf(b.value);
  return x < y ? -1 : x > y ? 1 : 0;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::map<std::string, SalesforceObjectType> FakeSalesforceOptions::defaultObjects() {
  SalesforceObjectType contact;
  contact.key_prefix = "003";
  contact.fields = {{"FirstName", 40},      {"LastName", 80},  {"Email", 80},
                    {"Phone", 40},          {"MobilePhone", 40}, {"Title", 128},
                    {"Department", 80},     {"LeadSource", 255}, {"MailingCity", 40},
                    {"MailingCountry", 80}, {"HasOptedOutOfEmail", 0},
                    {"Junction_Id__c", 255}};
  contact.external_id_fields = {"Junction_Id__c"};
  contact.email_fields = {"Email"};
  contact.required = {"LastName"};
  SalesforceObjectType lead = contact;
  lead.key_prefix = "00Q";
  lead.fields.erase("MailingCity");
  lead.fields.erase("MailingCountry");
  lead.fields.erase("Department");
  lead.fields["Company"] = 255;
  lead.fields["City"] = 40;
  lead.fields["Country"] = 80;
  lead.fields["Status"] = 255;
  lead.required = {"LastName", "Company"};
  return {{"Contact", contact}, {"Lead", lead}};
}

FakeSalesforce::FakeSalesforce(Options options)
    : options_(std::move(options)),
      api_limit_(options_.api_request_limit),
      server_([this](const RecordedRequest& request) { return handle(request); }) {}

FakeSalesforce::~FakeSalesforce() { server_.stop(); }

std::string FakeSalesforce::baseUrl() const { return server_.baseUrl(); }

void FakeSalesforce::failNext(std::size_t n, int status, std::string body,
                              std::vector<std::pair<std::string, std::string>> headers,
                              std::string path_prefix) {
  server_.failNext(n, status, std::move(body), std::move(headers), std::move(path_prefix));
}

void FakeSalesforce::setDelay(std::chrono::milliseconds delay) { server_.setDelay(delay); }

void FakeSalesforce::setDown(bool down) { server_.setDown(down); }

void FakeSalesforce::expireTokens() {
  std::lock_guard lock(mutex_);
  tokens_.clear();
}

void FakeSalesforce::setApiRequestLimit(std::uint64_t limit) {
  std::lock_guard lock(mutex_);
  api_limit_ = limit;
  api_used_ = 0;
}

void FakeSalesforce::setNow(std::int64_t epoch_ms) {
  std::lock_guard lock(mutex_);
  now_ms_ = epoch_ms;
}

std::int64_t FakeSalesforce::nowMs() const {
  if (now_ms_) {
    return *now_ms_;
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  return ms - ms % 1000;
}

std::string FakeSalesforce::newId(const SalesforceObjectType& type) {
  char digits[16];
  std::snprintf(digits, sizeof digits, "%010llu", static_cast<unsigned long long>(next_id_++));
  return type.key_prefix + "Dn" + digits + "AAA";
}

std::string FakeSalesforce::putRecord(const std::string& object, json::object fields) {
  std::lock_guard lock(mutex_);
  const auto& type = options_.objects.at(object);
  auto stored = std::make_unique<Stored>();
  stored->record = {object, newId(type), std::move(fields), nowMs(), nowMs()};
  const std::string id = stored->record.id;
  by_id_[id] = stored.get();
  stored_.push_back(std::move(stored));
  return id;
}

bool FakeSalesforce::updateRecord(const std::string& object, const std::string& id,
                                  json::object fields) {
  std::lock_guard lock(mutex_);
  const auto it = by_id_.find(id);
  if (it == by_id_.end() || it->second->record.object != object) {
    return false;
  }
  for (auto& [k, v] : fields) {
    it->second->record.fields[k] = std::move(v);
  }
  it->second->record.modstamp_ms = nowMs();
  return true;
}

std::vector<RecordedRequest> FakeSalesforce::requests() const { return server_.requests(); }

std::size_t FakeSalesforce::requestCount() const { return server_.requestCount(); }

bool FakeSalesforce::waitForRequests(std::size_t n, std::chrono::milliseconds timeout) const {
  return server_.waitForRequests(n, timeout);
}

void FakeSalesforce::clearRequests() { server_.clearRequests(); }

std::vector<FakeSalesforce::Record> FakeSalesforce::records(const std::string& object) const {
  std::lock_guard lock(mutex_);
  std::vector<Record> out;
  for (const auto& s : stored_) {
    if (s->record.object == object && by_id_.contains(s->record.id)) {
      out.push_back(s->record);
    }
  }
  return out;
}

std::optional<FakeSalesforce::Record> FakeSalesforce::record(const std::string& object,
                                                             const std::string& id) const {
  std::lock_guard lock(mutex_);
  const auto it = by_id_.find(id);
  if (it == by_id_.end() || it->second->record.object != object) {
    return std::nullopt;
  }
  return it->second->record;
}

std::optional<FakeSalesforce::Record> FakeSalesforce::recordByExternalId(
    const std::string& object, const std::string& field, const std::string& value) const {
  std::lock_guard lock(mutex_);
  for (const auto& [id, s] : by_id_) {
    const json::value* v = s->record.fields.if_contains(field);
    if (s->record.object == object && v != nullptr && textOf(*v) == value) {
      return s->record;
    }
  }
  return std::nullopt;
}

std::vector<std::string> FakeSalesforce::deletedIds() const {
  std::lock_guard lock(mutex_);
  return deleted_;
}

std::size_t FakeSalesforce::tokensIssued() const {
  std::lock_guard lock(mutex_);
  return tokens_issued_;
}

std::uint64_t FakeSalesforce::apiRequestsCounted() const {
  std::lock_guard lock(mutex_);
  return api_used_;
}

std::size_t FakeSalesforce::limitRefusals() const {
  std::lock_guard lock(mutex_);
  return limit_refusals_;
}

HttpResponse FakeSalesforce::handle(const RecordedRequest& request) {
  if (request.path == "/services/oauth2/token") {
    return token(request);
  }
  if (!request.path.starts_with(kDataPrefix)) {
    return apiError(404, "NOT_FOUND", "The requested resource does not exist");
  }
  const std::string_view after = std::string_view(request.path).substr(kDataPrefix.size());
  const auto slash = after.find('/');
  const std::string version_text(after.substr(0, slash));
  const auto version = parseVersion(version_text);
  if (!version || *version < 20.0 || *version > 66.0) {
    return apiError(404, "NOT_FOUND", "The requested resource does not exist");
  }
  const std::string_view rest =
      slash == std::string_view::npos ? std::string_view() : after.substr(slash + 1);
  std::string usage;
  {
    std::lock_guard lock(mutex_);
    const std::string_view header = request.headers.get("Authorization");
    static constexpr std::string_view kBearer = "Bearer ";
    const auto it = header.size() > kBearer.size() && iequals(header.substr(0, 7), kBearer)
                        ? tokens_.find(std::string(header.substr(kBearer.size())))
                        : tokens_.end();
    if (it == tokens_.end() || std::chrono::steady_clock::now() >= it->second) {
      if (it != tokens_.end()) {
        tokens_.erase(it);
      }
      return apiError(401, "INVALID_SESSION_ID", "Session expired or invalid");
    }
    ++api_used_;
    usage = "api-usage=" + std::to_string(api_used_) + "/" +
            std::to_string(api_limit_ == 0 ? 15000 : api_limit_);
    if (api_limit_ != 0 && api_used_ > api_limit_) {
      ++limit_refusals_;
      HttpResponse refused =
          apiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.");
      refused.headers.add("Sforce-Limit-Info", usage);
      return refused;
    }
  }
  HttpResponse response = api(request, *version, version_text, rest);
  response.headers.add("Sforce-Limit-Info", usage);
  return response;
}

HttpResponse FakeSalesforce::token(const RecordedRequest& request) {
  if (request.method != "POST") {
    return apiError(405, "METHOD_NOT_ALLOWED", "HTTP Method '" + request.method +
                                                   "' not allowed. Allowed are POST");
  }
  if (request.headers.get("Content-Type").find("application/x-www-form-urlencoded") ==
      std::string_view::npos) {
    return oauthError("unsupported_grant_type", "grant type not supported");
  }
  const auto grant = sdk::formValue(request.body, "grant_type");
  if (!grant || *grant != "client_credentials") {
    return oauthError("unsupported_grant_type", "grant type not supported");
  }
  if (sdk::formValue(request.body, "client_id").value_or("") != options_.client_id) {
    return oauthError("invalid_client_id", "client identifier invalid");
  }
  if (sdk::formValue(request.body, "client_secret").value_or("") != options_.client_secret) {
    return oauthError("invalid_client", "invalid client credentials");
  }
  const std::string access_token = "00DDn0000000001!AQ" + sdk::makeUuidV4();
  std::int64_t issued = 0;
  {
    std::lock_guard lock(mutex_);
    tokens_[access_token] = std::chrono::steady_clock::now() + options_.session_timeout;
    ++tokens_issued_;
    issued = nowMs();
  }
  json::object out{{"access_token", access_token},
                   {"signature", "fake-signature"},
                   {"scope", "api"},
                   {"instance_url", baseUrl()},
                   {"id", baseUrl() + "/id/00DDn0000000001AAA/005Dn0000000001AAA"},
                   {"token_type", "Bearer"},
                   {"issued_at", std::to_string(issued)}};
  return HttpResponse::json(200, json::serialize(out));
}

HttpResponse FakeSalesforce::api(const RecordedRequest& request, double version,
                                 const std::string& version_text, std::string_view rest) {
  std::vector<std::string> parts;
  for (std::string_view r = rest; !r.empty();) {
    const auto slash = r.find('/');
    parts.push_back(sdk::percentDecode(r.substr(0, slash)));
    r = slash == std::string_view::npos ? std::string_view() : r.substr(slash + 1);
  }
  const auto known = [&](const std::string& object) { return options_.objects.contains(object); };
  if (parts.size() == 1 && parts[0] == "query" && request.method == "GET") {
    return query(request, version_text);
  }
  if (parts.size() == 2 && parts[0] == "query" && request.method == "GET") {
    return queryMore(request, parts[1]);
  }
  if (parts.size() == 4 && parts[0] == "composite" && parts[1] == "sobjects" &&
      request.method == "PATCH" && version >= 46.0 && known(parts[2])) {
    return upsertMany(request, parts[2], parts[3]);
  }
  if (parts.size() == 4 && parts[0] == "sobjects" && known(parts[1])) {
    if (request.method == "PATCH") {
      return upsertOne(request, version, parts[1], parts[2], parts[3]);
    }
    if (request.method == "DELETE") {
      return remove(parts[1], parts[2], parts[3]);
    }
    if (request.method == "GET") {
      return get(version_text, parts[1], parts[2], parts[3]);
    }
  }
  if (parts.size() == 3 && parts[0] == "sobjects" && known(parts[1])) {
    if (request.method == "DELETE") {
      return remove(parts[1], "Id", parts[2]);
    }
    if (request.method == "GET") {
      return get(version_text, parts[1], "Id", parts[2]);
    }
  }
  return apiError(404, "NOT_FOUND", "The requested resource does not exist");
}

FakeSalesforce::Stored* FakeSalesforce::find(const std::string& object, const std::string& field,
                                             const std::string& value) {
  if (field == "Id") {
    const auto it = by_id_.find(value);
    return it != by_id_.end() && it->second->record.object == object ? it->second : nullptr;
  }
  for (const auto& [id, s] : by_id_) {
    const json::value* v = s->record.fields.if_contains(field);
    if (s->record.object == object && v != nullptr && textOf(*v) == value) {
      return s;
    }
  }
  return nullptr;
}

json::array FakeSalesforce::problems(const std::string& object, const SalesforceObjectType& type,
                                     const json::object& fields, bool create,
                                     std::string_view code_key) const {
  json::array out;
  const auto add = [&](std::string_view code, std::string message, json::array names) {
    out.push_back(json::object{{code_key, code}, {"message", std::move(message)},
                               {"fields", std::move(names)}});
  };
  for (const auto& [name, v] : fields) {
    if (name == "attributes") {
      continue;
    }
    const auto f = type.fields.find(std::string(name));
    if (f == type.fields.end()) {
      add("INVALID_FIELD",
          "No such column '" + std::string(name) + "' on sobject of type " + object,
          json::array{name});
      continue;
    }
    if (v.is_object() || v.is_array()) {
      add("JSON_PARSER_ERROR",
          "Cannot deserialize instance of " + std::string(name) + " from a JSON " +
              (v.is_object() ? "object" : "array"),
          json::array{name});
      continue;
    }
    if (v.is_string() && f->second != 0 && v.get_string().size() > f->second) {
      add("STRING_TOO_LONG",
          std::string(name) + ": data value too large: " + std::string(v.get_string()) +
              " (max length=" + std::to_string(f->second) + ")",
          json::array{name});
    }
    if (type.email_fields.contains(f->first) && v.is_string() && !v.get_string().empty() &&
        !validEmail(v.get_string())) {
      add("INVALID_EMAIL_ADDRESS",
          std::string(name) + ": invalid email address: " + std::string(v.get_string()),
          json::array{name});
    }
  }
  if (create) {
    json::array missing;
    std::string list;
    for (const auto& r : type.required) {
      const json::value* v = fields.if_contains(r);
      if (v == nullptr || v->is_null() || (v->is_string() && v->get_string().empty())) {
        missing.push_back(json::string(r));
        list += (list.empty() ? "" : ", ") + r;
      }
    }
    if (!missing.empty()) {
      add("REQUIRED_FIELD_MISSING", "Required fields are missing: [" + list + "]",
          std::move(missing));
    }
  }
  return out;
}

std::pair<std::string, bool> FakeSalesforce::write(const std::string& object,
                                                   const SalesforceObjectType& type,
                                                   const std::string& field,
                                                   const std::string& value,
                                                   const json::object& fields) {
  Stored* s = find(object, field, value);
  const bool created = s == nullptr;
  if (created) {
    auto stored = std::make_unique<Stored>();
    stored->record = {object, newId(type), {}, nowMs(), nowMs()};
    stored->record.fields[field] = value;
    s = stored.get();
    by_id_[s->record.id] = s;
    stored_.push_back(std::move(stored));
  }
  for (const auto& [k, v] : fields) {
    if (k != "attributes") {
      s->record.fields[k] = v;
    }
  }
  s->record.modstamp_ms = nowMs();
  return {s->record.id, created};
}

HttpResponse FakeSalesforce::upsertOne(const RecordedRequest& request, double version,
                                       const std::string& object, const std::string& field,
                                       const std::string& value) {
  const SalesforceObjectType& type = options_.objects.at(object);
  if (!type.external_id_fields.contains(field)) {
    return apiError(404, "NOT_FOUND",
                    "Provided external ID field does not exist or is not accessible: " + field);
  }
  auto parsed = sdk::parseJson(request.body);
  if (!parsed || !parsed->is_object()) {
    return apiError(400, "JSON_PARSER_ERROR",
                    "The request body must be a JSON object with the record's fields");
  }
  const json::object& fields = parsed->get_object();
  std::lock_guard lock(mutex_);
  const bool create = find(object, field, value) == nullptr;
  json::array refused = problems(object, type, fields, create, "errorCode");
  if (!refused.empty()) {
    return HttpResponse::json(400, json::serialize(refused));
  }
  const auto [id, created] = write(object, type, field, value, fields);
  if (!created && version < 46.0) {
    return HttpResponse{204, {}, ""};
  }
  json::object out{{"id", id}, {"success", true}, {"errors", json::array{}}, {"created", created}};
  return HttpResponse::json(created ? 201 : 200, json::serialize(out));
}

HttpResponse FakeSalesforce::upsertMany(const RecordedRequest& request, const std::string& object,
                                        const std::string& field) {
  const SalesforceObjectType& type = options_.objects.at(object);
  if (!type.external_id_fields.contains(field)) {
    return apiError(400, "INVALID_FIELD",
                    "Field name provided, " + field + " is not an External ID or indexed field "
                    "for " + object);
  }
  auto parsed = sdk::parseJson(request.body);
  const json::object* body = parsed ? parsed->if_object() : nullptr;
  const json::value* records = body != nullptr ? body->if_contains("records") : nullptr;
  if (records == nullptr || !records->is_array()) {
    return apiError(400, "JSON_PARSER_ERROR",
                    "The request body must be {\"allOrNone\":..., \"records\":[...]}");
  }
  const json::array& list = records->get_array();
  if (list.size() > kMaxCollectionRecords) {
    return apiError(400, "EXCEEDED_ID_LIMIT",
                    "record limit reached. cannot submit more than 200 records into this call");
  }
  const bool all_or_none = body->contains("allOrNone") && body->at("allOrNone").is_bool() &&
                           body->at("allOrNone").get_bool();
  std::lock_guard lock(mutex_);
  // Each record's problems; external ids seen twice refuse both records.
  std::vector<json::array> refused(list.size());
  std::map<std::string, std::vector<std::size_t>> seen;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const json::object* r = list[i].if_object();
    const auto problem = [&](std::string_view code, std::string message) {
      refused[i].push_back(json::object{
          {"statusCode", code}, {"message", std::move(message)}, {"fields", json::array{}}});
    };
    if (r == nullptr) {
      problem("JSON_PARSER_ERROR", "a record must be a JSON object");
      continue;
    }
    const auto type_name = sdk::stringAt(*r, "attributes.type");
    if (!type_name) {
      problem("INVALID_TYPE", "Must send a concrete entity type.");
      continue;
    }
    if (*type_name != object) {
      problem("INVALID_TYPE", "The record's type " + *type_name + " is not " + object);
      continue;
    }
    const json::value* key = r->if_contains(field);
    if (key == nullptr || key->is_null() || (key->is_string() && key->get_string().empty())) {
      problem("MISSING_ARGUMENT", field + " not specified");
      continue;
    }
    seen[textOf(*key)].push_back(i);
    refused[i] = problems(object, type, *r, find(object, field, textOf(*key)) == nullptr,
                          "statusCode");
  }
  for (const auto& [key, indices] : seen) {
    if (indices.size() > 1) {
      for (const std::size_t i : indices) {
        refused[i].push_back(json::object{{"statusCode", "DUPLICATE_EXTERNAL_ID"},
                                          {"message", "Duplicate external id specified: " + key},
                                          {"fields", json::array{json::string(field)}}});
      }
    }
  }
  const bool any_refused =
      std::any_of(refused.begin(), refused.end(), [](const json::array& a) { return !a.empty(); });
  json::array out;
  for (std::size_t i = 0; i < list.size(); ++i) {
    if (!refused[i].empty()) {
      out.push_back(json::object{{"success", false}, {"errors", std::move(refused[i])}});
    } else if (all_or_none && any_refused) {
      out.push_back(json::object{
          {"success", false},
          {"errors", json::array{json::object{
                         {"statusCode", "ALL_OR_NONE_OPERATION_ROLLED_BACK"},
                         {"message", "Record rolled back because not all records were valid and "
                                     "the request was using AllOrNone header"},
                         {"fields", json::array{}}}}}});
    } else {
      const json::object& r = list[i].get_object();
      const auto [id, created] = write(object, type, field, textOf(r.at(field)), r);
      out.push_back(json::object{
          {"id", id}, {"success", true}, {"errors", json::array{}}, {"created", created}});
    }
  }
  return HttpResponse::json(200, json::serialize(out));
}

HttpResponse FakeSalesforce::remove(const std::string& object, const std::string& field,
                                    const std::string& value) {
  const SalesforceObjectType& type = options_.objects.at(object);
  if (field != "Id" && !type.external_id_fields.contains(field)) {
    return apiError(404, "NOT_FOUND",
                    "Provided external ID field does not exist or is not accessible: " + field);
  }
  std::lock_guard lock(mutex_);
  Stored* s = find(object, field, value);
  if (s == nullptr) {
    if (field == "Id" && std::find(deleted_.begin(), deleted_.end(), value) != deleted_.end()) {
      return apiError(404, "ENTITY_IS_DELETED", "entity is deleted");
    }
    return apiError(404, "NOT_FOUND",
                    field == "Id" ? std::string("The requested resource does not exist")
                                  : "Provided external ID field does not exist or is not "
                                    "accessible: " + value);
  }
  deleted_.push_back(s->record.id);
  by_id_.erase(s->record.id);
  return HttpResponse{204, {}, ""};
}

json::object FakeSalesforce::render(const Stored& stored, const std::vector<std::string>& select,
                                    const std::string& version_text) const {
  const Record& r = stored.record;
  json::object out{{"attributes",
                    json::object{{"type", r.object},
                                 {"url", "/services/data/v" + version_text + "/sobjects/" +
                                             r.object + "/" + r.id}}}};
  for (const auto& field : select) {
    const FieldValue v = valueOf(r, field);
    out[field] = v.time ? json::value(sfTime(*v.time)) : v.value;
  }
  return out;
}

HttpResponse FakeSalesforce::get(const std::string& version_text, const std::string& object,
                                 const std::string& field, const std::string& value) {
  std::lock_guard lock(mutex_);
  const Stored* s = find(object, field, value);
  if (s == nullptr) {
    return apiError(404, "NOT_FOUND", "The requested resource does not exist");
  }
  std::vector<std::string> all(std::begin(kBuiltins), std::end(kBuiltins));
  for (const auto& [name, length] : options_.objects.at(object).fields) {
    all.push_back(name);
  }
  return HttpResponse::json(200, json::serialize(render(*s, all, version_text)));
}

HttpResponse FakeSalesforce::query(const RecordedRequest& request,
                                   const std::string& version_text) {
  const auto q = sdk::formValue(request.query, "q");
  if (!q || q->empty()) {
    return apiError(400, "MALFORMED_QUERY", "A query string has to be specified");
  }
  std::string code;
  std::string why;
  auto tokens = tokenize(*q, why);
  if (!tokens) {
    return apiError(400, "MALFORMED_QUERY", why);
  }
  auto soql = Parser(std::move(*tokens), options_.objects).parse(code, why);
  if (!soql) {
    return apiError(400, code, why);
  }
  std::size_t batch = options_.query_batch_size;
  const std::string_view query_options = request.headers.get("Sforce-Query-Options");
  if (const auto at = query_options.find("batchSize="); at != std::string_view::npos) {
    std::size_t n = 0;
    const char* begin = query_options.data() + at + 10;
    std::from_chars(begin, query_options.data() + query_options.size(), n);
    batch = std::clamp<std::size_t>(n, 200, 2000);
  }
  std::lock_guard lock(mutex_);
  std::vector<const Stored*> hits;
  for (const auto& s : stored_) {
    if (s->record.object == soql->object && by_id_.contains(s->record.id) &&
        (!soql->where || matches(s->record, *soql->where))) {
      hits.push_back(s.get());
    }
  }
  std::stable_sort(hits.begin(), hits.end(), [&](const Stored* a, const Stored* b) {
    for (const auto& [field, descending] : soql->order) {
      const int c = order(valueOf(a->record, field), valueOf(b->record, field));
      if (c != 0) {
        return descending ? c > 0 : c < 0;
      }
    }
    return false;
  });
  if (soql->limit && hits.size() > *soql->limit) {
    hits.resize(*soql->limit);
  }
  auto snapshot = std::make_unique<Query>();
  snapshot->version_text = version_text;
  snapshot->batch = batch;
  for (const Stored* s : hits) {
    snapshot->rows.push_back(render(*s, soql->select, version_text));
  }
  const std::size_t total = snapshot->rows.size();
  const std::size_t end = std::min(batch, total);
  json::object out{{"totalSize", total}, {"done", end == total}};
  json::array page(snapshot->rows.begin(),
                   snapshot->rows.begin() + static_cast<std::ptrdiff_t>(end));
  if (end < total) {
    // The rest stays in a cursor, a snapshot of the results as they were at the query.
    char locator[32];
    std::snprintf(locator, sizeof locator, "01gDn%010llu",
                  static_cast<unsigned long long>(next_locator_++));
    out["nextRecordsUrl"] =
        "/services/data/v" + version_text + "/query/" + locator + "-" + std::to_string(end);
    locators_[locator] = std::move(snapshot);
  }
  out["records"] = std::move(page);
  return HttpResponse::json(200, json::serialize(out));
}

HttpResponse FakeSalesforce::queryMore(const RecordedRequest&, const std::string& locator) {
  const auto dash = locator.rfind('-');
  std::size_t offset = 0;
  if (dash == std::string::npos ||
      std::from_chars(locator.data() + dash + 1, locator.data() + locator.size(), offset).ptr !=
          locator.data() + locator.size()) {
    return apiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator");
  }
  const std::string name = locator.substr(0, dash);
  std::lock_guard lock(mutex_);
  const auto it = locators_.find(name);
  if (it == locators_.end() || offset >= it->second->rows.size()) {
    return apiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator");
  }
  const Query& q = *it->second;
  const std::size_t end = std::min(offset + q.batch, q.rows.size());
  json::array page(q.rows.begin() + static_cast<std::ptrdiff_t>(offset),
                   q.rows.begin() + static_cast<std::ptrdiff_t>(end));
  json::object out{{"totalSize", q.rows.size()}, {"done", end == q.rows.size()}};
  if (end < q.rows.size()) {
    out["nextRecordsUrl"] =
        "/services/data/v" + q.version_text + "/query/" + name + "-" + std::to_string(end);
  }
  out["records"] = std::move(page);
  // A locator stays usable after its last page (a client may retry a lost answer); Salesforce
  // expires idle cursors after 15 minutes, which tests never reach.
  return HttpResponse::json(200, json::serialize(out));
}

}  // namespace junction::tests::fakes

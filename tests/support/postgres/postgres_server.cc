#include "tests/support/postgres/postgres_server.h"

#include <fcntl.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "tests/support/process.h"

namespace junction::testing {
namespace {

namespace fs = std::filesystem;

// The bin directory of the newest version under /usr/lib/postgresql with initdb and pg_ctl.
std::string findBinDir() {
  std::error_code ec;
  std::string best;
  double best_version = -1;
  for (fs::directory_iterator it("/usr/lib/postgresql", ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    char* rest = nullptr;
    const double version = std::strtod(name.c_str(), &rest);
    if (name.empty() || rest == nullptr || *rest != '\0') continue;
    const std::string bin = it->path().string() + "/bin";
    if (version > best_version && isExecutable(bin + "/initdb") && isExecutable(bin + "/pg_ctl")) {
      best_version = version;
      best = bin;
    }
  }
  return best;
}

// A conninfo value: bare when it can be, else single-quoted with \ and ' escaped.
std::string conninfoValue(const std::string& value) {
  bool plain = !value.empty();
  for (char c : value) {
    if (c == ' ' || c == '\'' || c == '\\' || c == '=' || c == '\t' || c == '\n') plain = false;
  }
  if (plain) return value;
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

std::string quoteIdentifier(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

// The postmaster's pid from data/postmaster.pid, 0 when there is none.
pid_t postmasterPid(const std::string& data_dir) {
  std::ifstream in(data_dir + "/postmaster.pid");
  long pid = 0;
  if (!(in >> pid) || pid <= 0) return 0;
  return static_cast<pid_t>(pid);
}

struct PgConn {
  PGconn* conn = nullptr;
  ~PgConn() {
    if (conn != nullptr) PQfinish(conn);
  }
};

struct PgResult {
  PGresult* result = nullptr;
  ~PgResult() {
    if (result != nullptr) PQclear(result);
  }
};

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

}  // namespace

std::unique_ptr<PostgresServer> PostgresServer::start(std::string* error) {
  std::string ignored;
  if (error == nullptr) error = &ignored;
  error->clear();
  std::unique_ptr<PostgresServer> server(new PostgresServer());
  if (!server->init(error) || !server->startServer(error)) return nullptr;  // ~ cleans up
  return server;
}

bool PostgresServer::init(std::string* error) {
  bin_dir_ = findBinDir();
  if (bin_dir_.empty()) {
    *error = "PostgresServer: no /usr/lib/postgresql/<version>/bin with initdb and pg_ctl "
             "(install the postgresql package: scripts/deps)";
    return false;
  }
  as_nobody_ = ::geteuid() == 0;
  if (as_nobody_) {
    // PostgreSQL refuses to run as root: initdb, pg_ctl and the server run as nobody.
    const passwd* pw = ::getpwnam("nobody");
    if (pw == nullptr) {
      *error = "PostgresServer: running as root and there is no user `nobody` to run "
               "PostgreSQL as";
      return false;
    }
    nobody_uid_ = pw->pw_uid;
    nobody_gid_ = pw->pw_gid;
    for (const char* candidate : {"/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"}) {
      if (isExecutable(candidate)) {
        runuser_ = candidate;
        break;
      }
    }
    if (runuser_.empty()) {
      *error = "PostgresServer: running as root and runuser (util-linux) is not installed";
      return false;
    }
  }

  char dir_template[] = "/tmp/junction_pg.XXXXXX";
  if (::mkdtemp(dir_template) == nullptr) {
    *error = errnoText("PostgresServer: mkdtemp /tmp/junction_pg.XXXXXX");
    return false;
  }
  dir_ = dir_template;
  data_dir_ = dir_ + "/data";
  log_file_ = dir_ + "/postgres.log";

  const int log_fd = ::open(log_file_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    *error = errnoText("PostgresServer: create " + log_file_);
    return false;
  }
  bool ok = true;
  if (as_nobody_) {
    // The server (as nobody) appends to the log and creates data/ and its socket in the
    // directory. /tmp is world-searchable (1777), so nobody reaches it.
    if (::fchown(log_fd, nobody_uid_, nobody_gid_) != 0 ||
        ::chown(dir_.c_str(), nobody_uid_, nobody_gid_) != 0 || ::chmod(dir_.c_str(), 0700) != 0) {
      *error = errnoText("PostgresServer: chown " + dir_ + " to nobody");
      ok = false;
    }
  }
  ::close(log_fd);
  if (!ok) return false;

  const int status = run({bin_dir_ + "/initdb", "-D", data_dir_, "-A", "trust", "-U", "postgres",
                          "--no-sync", "-E", "UTF8", "--locale=C"},
                         error);
  if (status != 0) {
    if (status > 0 && error->empty()) {
      *error = "PostgresServer: initdb exited with " + std::to_string(status);
    }
    *error += "\n--- last lines of initdb's, pg_ctl's and the server's output ---\n" +
              logTail(30);
    return false;
  }
  return true;
}

bool PostgresServer::startServer(std::string* error) {
  // The port is free when picked but could be taken before the server binds it: try again
  // with another when the log says so.
  constexpr int kAttempts = 5;
  for (int attempt = 1; attempt <= kAttempts; ++attempt) {
    error->clear();
    const std::vector<int> ports = pickFreePorts(1, error);
    if (ports.empty()) return false;
    port_ = ports[0];
    const std::string options = "-p " + std::to_string(port_) + " -k " + dir_ +
                                " -c listen_addresses=127.0.0.1 -c fsync=off"
                                " -c synchronous_commit=off -c full_page_writes=off"
                                " -c max_connections=50";
    std::ifstream before(log_file_, std::ios::ate);
    const std::streamoff log_size = before ? static_cast<std::streamoff>(before.tellg()) : 0;
    const int status = run({bin_dir_ + "/pg_ctl", "start", "-w", "-t", "30", "-D", data_dir_,
                            "-l", log_file_, "-o", options},
                           error);
    if (status == 0) return true;
    if (status > 0 && error->empty()) {
      *error = "PostgresServer: pg_ctl start (port " + std::to_string(port_) + ") exited with " +
               std::to_string(status);
    }
    // Anything pg_ctl left running (a timed-out start) is stopped before another try.
    stop();
    std::ifstream after(log_file_);
    after.seekg(log_size);
    const std::string attempt_log((std::istreambuf_iterator<char>(after)),
                                  std::istreambuf_iterator<char>());
    const bool port_taken = attempt_log.find("Address already in use") != std::string::npos;
    if (!port_taken || attempt == kAttempts) break;
  }
  *error += "\n--- last lines of initdb's, pg_ctl's and the server's output ---\n" +
              logTail(30);
  return false;
}

int PostgresServer::run(const std::vector<std::string>& args, std::string* error) const {
  std::vector<std::string> full;
  if (as_nobody_) full = {runuser_, "-u", "nobody", "--"};
  full.insert(full.end(), args.begin(), args.end());
  const pid_t pid = spawnWithLog(full, log_file_, dir_, error);
  if (pid < 0) {
    *error = "PostgresServer: " + *error;
    return -1;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      *error = errnoText("PostgresServer: waitpid");
      return -1;
    }
  }
  if (WIFEXITED(status)) {
    if (WEXITSTATUS(status) == 127) *error = "PostgresServer: could not execute " + full[0];
    return WEXITSTATUS(status);
  }
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

void PostgresServer::stop() noexcept {
  if (data_dir_.empty()) return;
  try {
    const pid_t pid = postmasterPid(data_dir_);
    if (pid == 0) return;
    std::string ignored;
    run({bin_dir_ + "/pg_ctl", "stop", "-w", "-t", "10", "-m", "immediate", "-D", data_dir_},
        &ignored);
    if (postmasterPid(data_dir_) == pid && ::kill(pid, 0) == 0) {
      // Still there: kill it and wait (bounded) until it is gone.
      ::kill(pid, SIGKILL);
      for (int i = 0; i < 100 && ::kill(pid, 0) == 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      std::error_code ec;
      fs::remove(data_dir_ + "/postmaster.pid", ec);
    }
  } catch (...) {
  }
}

PostgresServer::~PostgresServer() {
  stop();
  if (!dir_.empty()) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

std::string PostgresServer::logTail(std::size_t lines) const {
  return fileTail(log_file_, lines);
}

std::string PostgresServer::dsn(const std::string& dbname) const {
  return "host=127.0.0.1 port=" + std::to_string(port_) +
         " user=postgres dbname=" + conninfoValue(dbname);
}

std::vector<std::vector<std::string>> PostgresServer::query(const std::string& sql,
                                                            const std::string& dbname) const {
  PgConn conn;
  conn.conn = PQconnectdb((dsn(dbname) + " connect_timeout=10 sslmode=disable").c_str());
  if (conn.conn == nullptr || PQstatus(conn.conn) != CONNECTION_OK) {
    throw std::runtime_error("PostgresServer: connect to " + dsn(dbname) + ": " +
                             trimmed(conn.conn ? PQerrorMessage(conn.conn) : "out of memory"));
  }
  PgResult result;
  result.result = PQexec(conn.conn, sql.c_str());
  const ExecStatusType status = PQresultStatus(result.result);
  std::vector<std::vector<std::string>> rows;
  if (status == PGRES_COMMAND_OK || status == PGRES_EMPTY_QUERY) return rows;
  if (status != PGRES_TUPLES_OK) {
    const char* message = result.result ? PQresultErrorMessage(result.result)
                                        : PQerrorMessage(conn.conn);
    std::string text = trimmed(message ? message : "");
    if (text.empty()) text = PQresStatus(status);
    throw std::runtime_error("PostgresServer: " + text + " (in: " + sql + ")");
  }
  const int n_rows = PQntuples(result.result);
  const int n_cols = PQnfields(result.result);
  rows.reserve(static_cast<std::size_t>(n_rows));
  for (int r = 0; r < n_rows; ++r) {
    std::vector<std::string>& row = rows.emplace_back();
    row.reserve(static_cast<std::size_t>(n_cols));
    for (int c = 0; c < n_cols; ++c) {
      if (PQgetisnull(result.result, r, c)) {
        row.emplace_back("\\N");
      } else {
        row.emplace_back(PQgetvalue(result.result, r, c),
                         static_cast<std::size_t>(PQgetlength(result.result, r, c)));
      }
    }
  }
  return rows;
}

std::string PostgresServer::scalar(const std::string& sql, const std::string& dbname) const {
  const auto rows = query(sql, dbname);
  if (rows.size() != 1 || rows[0].size() != 1) {
    throw std::runtime_error("PostgresServer: scalar() expects one row of one column, got " +
                             std::to_string(rows.size()) + " rows (in: " + sql + ")");
  }
  return rows[0][0];
}

std::string PostgresServer::createDatabase(const std::string& name) const {
  query("CREATE DATABASE " + quoteIdentifier(name));
  return name;
}

}  // namespace junction::testing

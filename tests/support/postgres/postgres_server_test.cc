#include "tests/support/postgres/postgres_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace junction::testing {
namespace {

using Rows = std::vector<std::vector<std::string>>;

// Whether something accepts TCP connections on 127.0.0.1:port.
bool accepts(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool connected = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return connected;
}

TEST(PostgresServerTest, StartsQueriesAndStopsLeavingNothing) {
  std::string error;
  auto server = PostgresServer::start(&error);
  ASSERT_NE(server, nullptr) << error;
  const int port = server->port();
  const std::string dir = server->directory();
  EXPECT_GT(port, 0);
  EXPECT_TRUE(accepts(port));
  EXPECT_EQ(server->dsn(), "host=127.0.0.1 port=" + std::to_string(port) +
                               " user=postgres dbname=postgres");
  EXPECT_TRUE(std::filesystem::exists(server->binDir() + "/psql")) << server->binDir();
  EXPECT_TRUE(std::filesystem::exists(server->logFile()));

  EXPECT_EQ(server->scalar("select 1"), "1");
  EXPECT_EQ(server->scalar("show server_version_num").substr(0, 2), "15");
  EXPECT_EQ(server->scalar("show fsync"), "off");
  EXPECT_EQ(server->scalar("show max_connections"), "50");
  EXPECT_EQ(server->scalar("select current_user"), "postgres");

  // A table: several statements in one call, then rows back as text, NULL as \N.
  EXPECT_EQ(server->query("create table contacts (id int primary key, email text, score float8);"
                          "insert into contacts values (1, 'a@example.com', 1.5),"
                          " (2, 'b@example.com', null), (3, 'ü@example.com', -2)"),
            Rows{});
  EXPECT_EQ(server->query("select id, email, score from contacts order by id"),
            (Rows{{"1", "a@example.com", "1.5"},
                  {"2", "b@example.com", "\\N"},
                  {"3", "ü@example.com", "-2"}}));
  EXPECT_EQ(server->scalar("select count(*) from contacts where score is not null"), "2");
  EXPECT_EQ(server->query("select 1 where false"), Rows{});

  // Errors carry the server's message.
  try {
    server->query("insert into contacts values (1, 'dup@example.com', 0)");
    ADD_FAILURE() << "a duplicate key was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("duplicate key"), std::string::npos) << e.what();
  }
  EXPECT_THROW(server->query("select * from no_such_table"), std::runtime_error);
  EXPECT_THROW(server->scalar("select 1, 2"), std::runtime_error);
  EXPECT_THROW(server->scalar("select id from contacts"), std::runtime_error);

  // A second database, separate from the first.
  EXPECT_EQ(server->createDatabase("second"), "second");
  EXPECT_EQ(server->dsn("second"), "host=127.0.0.1 port=" + std::to_string(port) +
                                       " user=postgres dbname=second");
  EXPECT_EQ(server->scalar("select current_database()", "second"), "second");
  server->query("create table t (v text); insert into t values ('in second')", "second");
  EXPECT_EQ(server->scalar("select v from t", "second"), "in second");
  EXPECT_THROW(server->query("select * from t"), std::runtime_error);  // not in postgres
  EXPECT_THROW(server->createDatabase("second"), std::runtime_error);
  EXPECT_EQ(server->createDatabase("Mixed Case"), "Mixed Case");
  EXPECT_EQ(server->scalar("select current_database()", "Mixed Case"), "Mixed Case");
  EXPECT_THROW(server->query("select 1", "no_such_db"), std::runtime_error);

  server.reset();
  EXPECT_FALSE(accepts(port)) << "port " << port << " still accepts connections";
  EXPECT_FALSE(std::filesystem::exists(dir)) << dir;
}

TEST(PostgresServerTest, TwoServersAtOnceAreIndependent) {
  std::string error;
  auto a = PostgresServer::start(&error);
  ASSERT_NE(a, nullptr) << error;
  auto b = PostgresServer::start(&error);
  ASSERT_NE(b, nullptr) << error;
  EXPECT_NE(a->port(), b->port());
  a->query("create table only_in_a (x int)");
  EXPECT_EQ(b->scalar("select count(*) from pg_tables where tablename = 'only_in_a'"), "0");
  const int port_a = a->port();
  a.reset();
  EXPECT_FALSE(accepts(port_a));
  EXPECT_EQ(b->scalar("select 2"), "2");
}

}  // namespace
}  // namespace junction::testing

// SPDX-License-Identifier: Apache-2.0
// What a killed and restarted job meets: latest behind a stale last, saving a committed step
// again, --move putting files back, and the reasons of not-found errors.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include "ckpt/error.hpp"
#include "fault_fs.hpp"
#include "ckpt/format.hpp"
#include "ckpt/fs.hpp"
#include "ckpt/repository.hpp"
#include "internal.hpp"
#include "test_support.hpp"

using ckpt_test::exists;
using ckpt_test::read_text;
using ckpt_test::write_text;

namespace {

struct Job {
  explicit Job(const ckpt_test::TempDir& tmp) : root(tmp.sub("root")), work(tmp.sub("work")) {
    ctx.fs = &fs;
    ctx.lock_timeout = 5;
    ctx.warn = [this](const std::string& w) { warnings.push_back(w); };
  }

  void write_work(std::uint64_t step) {
    write_text(work + "/model.pt", "weights " + std::to_string(step) + "\n");
    write_text(work + "/optim/state.pt", "optimizer " + std::to_string(step * 3) + "\n");
  }

  ckpt::SaveOptions options(std::uint64_t step, ckpt::Transfer transfer = ckpt::Transfer::copy) {
    ckpt::SaveOptions o;
    o.root = root;
    o.step = step;
    o.sources = {ckpt::Source{work, std::nullopt, true}};
    o.metrics = {{"loss", 1.0 / static_cast<double>(step + 1)}};
    o.policy.best_key = "loss";
    o.transfer = transfer;
    return o;
  }

  ckpt::Result<ckpt::SaveReport> save(std::uint64_t step,
                                      ckpt::Transfer transfer = ckpt::Transfer::copy) {
    write_work(step);
    return ckpt::save(ctx, options(step, transfer));
  }

  std::string latest() {
    auto r = ckpt::resolve_ref(ctx, root, "latest");
    REQUIRE_MESSAGE(r.ok(), r.error().message());
    return r->name;
  }

  ckpt::PosixFileSystem fs{true};
  ckpt::Context ctx;
  std::string root;
  std::string work;
  std::vector<std::string> warnings;
};

std::uint64_t count_ops(const std::vector<std::string>& log, const std::string& op) {
  return static_cast<std::uint64_t>(std::count(log.begin(), log.end(), op));
}

// Operations resolve_ref("latest") makes on a root of n checkpoints.
std::vector<std::string> latest_ops(std::uint64_t n, bool stale) {
  ckpt_test::TempDir tmp;
  Job job(tmp);
  for (std::uint64_t s = 1; s <= n; ++s) REQUIRE(job.save(s).ok());
  if (stale) write_text(job.root + "/last", "step-000000001\n");
  ckpt::FaultInjectingFileSystem counting(job.fs);
  counting.record(true);
  ckpt::Context ctx = job.ctx;
  ctx.fs = &counting;
  auto r = ckpt::resolve_ref(ctx, job.root, "latest");
  REQUIRE_MESSAGE(r.ok(), r.error().message());
  CHECK(r->name == ckpt::step_dir_name(n));
  return counting.log();
}

// The real file system, on which another writer appends to every file whose
// path ends with victim while save is reading it (after its first read).
class WrittenDuringRead : public ckpt::PosixFileSystem {
 public:
  explicit WrittenDuringRead(std::string victim) : PosixFileSystem(true), m_victim(std::move(victim)) {}
  int open(const std::string& path, int flags, mode_t mode = 0644) override {
    int fd = PosixFileSystem::open(path, flags, mode);
    bool reading = (flags & O_ACCMODE) == O_RDONLY;
    std::lock_guard<std::mutex> lock(m_mutex);  // save opens and reads on several threads
    if (reading && path.size() >= m_victim.size() &&
        path.compare(path.size() - m_victim.size(), m_victim.size(), m_victim) == 0) {
      m_fd = fd;
      m_path = path;
    }
    return fd;
  }
  std::size_t read(int fd, void* buf, std::size_t n) override {
    std::size_t got = PosixFileSystem::read(fd, buf, n);
    std::lock_guard<std::mutex> lock(m_mutex);
    if (fd == m_fd && got > 0) {
      std::ofstream(m_path, std::ios::app) << "appended by another writer\n";
      m_fd = -1;
      ++writes;
    }
    return got;
  }
  int writes = 0;

 private:
  std::string m_victim;
  std::string m_path;
  int m_fd = -1;
  std::mutex m_mutex;
};

std::string reason_of(const ckpt::Result<ckpt::LoadReport>& r) {
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().kind() == ckpt::ErrorKind::not_found);
  return r.error().reason();
}

ino_t inode(const std::string& path) {
  struct stat st {};
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  return st.st_ino;
}

}  // namespace

TEST_CASE("restart: latest reads no more when last is current, whatever the number of checkpoints") {
  auto few = latest_ops(3, false);
  auto many = latest_ops(12, false);
  CHECK(count_ops(few, "open") == count_ops(many, "open"));
  CHECK(count_ops(few, "list_dir") == count_ops(many, "list_dir"));
  // A stale last costs a scan, so the check above can tell the two apart.
  auto stale_few = latest_ops(3, true);
  auto stale_many = latest_ops(12, true);
  CHECK(count_ops(stale_many, "open") > count_ops(stale_few, "open"));
}

TEST_CASE("restart: latest is the newest committed checkpoint behind a stale or missing last") {
  CKPT_TEMP_DIR(tmp);
  Job job(tmp);
  REQUIRE(job.save(1).ok());
  REQUIRE(job.save(2).ok());
  REQUIRE(job.save(3).ok());
  write_text(job.root + "/last", "step-000000002\n");  // a kill between commit and marker
  CHECK(job.latest() == "step-000000003");
  CHECK(std::any_of(job.warnings.begin(), job.warnings.end(), [](const std::string& w) {
    return w.find("step-000000002") != std::string::npos &&
           w.find("step-000000003") != std::string::npos;
  }));
  auto listing = ckpt::list_checkpoints(job.ctx, job.root);
  REQUIRE(listing.ok());
  CHECK(listing->last == "step-000000003");
  CHECK(listing->last_marker == "step-000000002");
  auto by_step = ckpt::resolve_ref(job.ctx, job.root, "3");
  REQUIRE(by_step.ok());
  CHECK(by_step->markers == std::vector<std::string>{"last", "best"});
  auto older = ckpt::resolve_ref(job.ctx, job.root, "2");  // the one the stale file names
  REQUIRE(older.ok());
  CHECK(older->markers.empty());

  // A checkpoint committed under a higher step but earlier: commit order decides.
  std::remove((job.root + "/last").c_str());
  CHECK(job.latest() == "step-000000003");
  std::remove((job.root + "/.ckpt/commit_seq").c_str());
  write_text(job.root + "/last", "step-000000001\n");
  CHECK(job.latest() == "step-000000003");

  // The next save puts last right.
  REQUIRE(job.save(4).ok());
  CHECK(read_text(job.root + "/last") == "step-000000004\n");

  // A stale last naming a damaged or uncommitted directory does not block the newest...
  write_text(job.root + "/last", "step-000000001\n");
  write_text(job.root + "/step-000000001/_checkpoint.json", "{bad");
  CHECK(job.latest() == "step-000000004");
  REQUIRE(::mkdir((job.root + "/step-000000009").c_str(), 0755) == 0);
  write_text(job.root + "/last", "step-000000009\n");
  CHECK(job.latest() == "step-000000004");
  // ...but a damaged newest is reported, never skipped for an older checkpoint.
  write_text(job.root + "/last", "step-000000004\n");
  write_text(job.root + "/step-000000004/_checkpoint.json", "{bad");
  auto damaged = ckpt::resolve_ref(job.ctx, job.root, "latest");
  REQUIRE_FALSE(damaged.ok());
  CHECK(damaged.error().kind() == ckpt::ErrorKind::integrity);
}

TEST_CASE("restart: a save killed before its commit leaves no gap in commit_seq") {
  CKPT_TEMP_DIR(tmp);
  Job job(tmp);
  REQUIRE(job.save(1).ok());
  REQUIRE(job.save(2).ok());
  // The counter is written before the commit rename; a kill in between leaves it ahead.
  write_text(job.root + "/.ckpt/commit_seq", "3\n");
  CHECK(job.latest() == "step-000000002");
  auto r = job.save(3);
  REQUIRE(r.ok());
  CHECK(r->commit_seq == 3);
  // A kill between the commit and `last`: the committed number is never reused.
  write_text(job.root + "/last", "step-000000002\n");
  auto r4 = job.save(4);
  REQUIRE(r4.ok());
  CHECK(r4->commit_seq == 4);
}

TEST_CASE("restart: saving a committed step again with the same files succeeds and changes nothing") {
  CKPT_TEMP_DIR(tmp);
  Job job(tmp);
  REQUIRE(job.save(1).ok());
  auto first = job.save(2);
  REQUIRE(first.ok());
  std::string manifest = read_text(job.root + "/step-000000002/_checkpoint.json");
  write_text(job.root + "/last", "step-000000001\n");

  auto again = job.save(2);  // the same content, written again by the restarted job
  REQUIRE_MESSAGE(again.ok(), again.error().message());
  CHECK(again->existing);
  CHECK(again->commit_seq == first->commit_seq);
  CHECK(again->name == "step-000000002");
  CHECK(read_text(job.root + "/step-000000002/_checkpoint.json") == manifest);
  CHECK(read_text(job.root + "/last") == "step-000000002\n");  // finished what the kill left

  write_text(job.work + "/model.pt", "other weights\n");
  auto other = ckpt::save(job.ctx, job.options(2));
  REQUIRE_FALSE(other.ok());
  CHECK(other.error().kind() == ckpt::ErrorKind::conflict);
  CHECK(other.error().message().find("model.pt") != std::string::npos);

  job.write_work(2);
  write_text(job.work + "/extra.pt", "x");
  auto extra = ckpt::save(job.ctx, job.options(2));
  REQUIRE_FALSE(extra.ok());
  CHECK(extra.error().kind() == ckpt::ErrorKind::conflict);
  std::remove((job.work + "/extra.pt").c_str());

  // Without digests nothing can be shown identical.
  job.write_work(5);
  auto opts = job.options(5);
  opts.policy.checksum = "none";
  REQUIRE(ckpt::save(job.ctx, opts).ok());
  auto unhashed = ckpt::save(job.ctx, opts);
  REQUIRE_FALSE(unhashed.ok());
  CHECK(unhashed.error().kind() == ckpt::ErrorKind::conflict);
  CHECK(read_text(job.root + "/step-000000002/_checkpoint.json") == manifest);
}

TEST_CASE("restart: --move renames the sources in and leaves --from DIR in place, empty") {
  CKPT_TEMP_DIR(tmp);
  Job job(tmp);
  job.write_work(1);
  ino_t model = inode(job.work + "/model.pt");
  auto r = ckpt::save(job.ctx, job.options(1, ckpt::Transfer::move));
  REQUIRE_MESSAGE(r.ok(), r.error().message());
  CHECK(inode(job.root + "/step-000000001/model.pt") == model);
  CHECK(ckpt_test::is_dir(job.work));
  CHECK(ckpt_test::list_dir(job.work).empty());
  // The next files written to the same paths are new files.
  write_text(job.work + "/model.pt", "the next step's weights\n");
  CHECK(read_text(job.root + "/step-000000001/model.pt") == "weights 1\n");
}

TEST_CASE("restart: a --move that fails before its commit puts every source back") {
  CKPT_TEMP_DIR(tmp);
  Job job(tmp);
  REQUIRE(job.save(1).ok());
  // Find the commit rename, then fail there: every file is in staging by then.
  ckpt::FaultInjectingFileSystem faulty(job.fs);
  ckpt::Context ctx = job.ctx;
  ctx.fs = &faulty;
  job.write_work(2);
  faulty.record(true);
  REQUIRE(ckpt::save(ctx, job.options(2, ckpt::Transfer::move)).ok());
  std::vector<std::uint64_t> renames;
  for (std::size_t i = 0; i < faulty.log().size(); ++i) {
    if (faulty.log()[i] == "rename") renames.push_back(i + 1);
  }
  REQUIRE(renames.size() >= 3);  // two sources, the journal, the counter, the commit, ...
  std::uint64_t checked = 0;
  for (auto at : renames) {
    ckpt_test::TempDir t2;
    Job j2(t2);
    REQUIRE(j2.save(1).ok());
    j2.write_work(2);
    ino_t model = inode(j2.work + "/model.pt");
    ckpt::FaultInjectingFileSystem f2(j2.fs);
    ckpt::Context c2 = j2.ctx;
    c2.fs = &f2;
    f2.fail_at(at, EIO);
    auto r = ckpt::save(c2, j2.options(2, ckpt::Transfer::move));
    if (r.ok() || exists(j2.root + "/step-000000002")) continue;  // failed after the commit
    INFO("rename #" << at << ": " << r.error().message());
    CHECK(read_text(j2.work + "/model.pt") == "weights 2\n");
    CHECK(read_text(j2.work + "/optim/state.pt") == "optimizer 6\n");
    CHECK(inode(j2.work + "/model.pt") == model);
    auto staging = ckpt_test::list_dir(j2.root + "/.ckpt/staging");
    CHECK_MESSAGE(staging.empty(), "staging left: " << staging.size());
    ++checked;
  }
  CHECK(checked >= 2);
}

TEST_CASE("restart: an interrupted --move's files go back when the next save or prune runs") {
  CKPT_TEMP_DIR(tmp);
  Job job(tmp);
  REQUIRE(job.save(1).ok());
  job.write_work(2);
  // What a kill after the renames and before the commit leaves: the files in
  // staging, the journal beside them, a free staging lock.
  std::string staging = job.root + "/.ckpt/staging/step-000000002.999.0.dead";
  std::vector<ckpt::MovedFile> moved;
  for (const char* rel : {"model.pt", "optim/state.pt"}) {
    struct stat st {};
    REQUIRE(::lstat((job.work + "/" + rel).c_str(), &st) == 0);
    moved.push_back(ckpt::MovedFile{job.work + "/" + rel, rel, static_cast<std::uint64_t>(st.st_dev),
                                    static_cast<std::uint64_t>(st.st_ino)});
  }
  write_text(staging + "/.keep", "");
  std::remove((staging + "/.keep").c_str());
  REQUIRE(::mkdir((staging + "/optim").c_str(), 0755) == 0);
  write_text(ckpt::detail::move_journal_path(staging), ckpt::serialize_move_journal(moved));
  REQUIRE(std::rename((job.work + "/model.pt").c_str(), (staging + "/model.pt").c_str()) == 0);
  REQUIRE(std::rename((job.work + "/optim/state.pt").c_str(), (staging + "/optim/state.pt").c_str()) == 0);
  // The job wrote model.pt again meanwhile: its new content stays.
  write_text(job.work + "/model.pt", "rewritten\n");

  std::vector<std::string> expected = {job.work + "/optim/state.pt (put back)",
                                       ".ckpt/staging/step-000000002.999.0.dead"};
  auto dry = ckpt::detail::recover_interrupted_moves(job.ctx, job.root, true);
  CHECK(dry == expected);
  CHECK_FALSE(exists(job.work + "/optim/state.pt"));

  auto back = ckpt::detail::recover_interrupted_moves(job.ctx, job.root, false);
  CHECK(back == expected);
  CHECK(read_text(job.work + "/optim/state.pt") == "optimizer 6\n");
  CHECK(read_text(job.work + "/model.pt") == "rewritten\n");
  CHECK(ckpt_test::list_dir(job.root + "/.ckpt/staging").empty());
}

TEST_CASE("restart: not-found errors say what was not found") {
  CKPT_TEMP_DIR(tmp);
  Job job(tmp);
  ckpt::LoadOptions lo;
  lo.root = job.root;
  lo.ref = "latest";
  CHECK(reason_of(ckpt::load(job.ctx, lo)) == ckpt::k_reason_no_root);
  REQUIRE(::mkdir(job.root.c_str(), 0755) == 0);
  CHECK(reason_of(ckpt::load(job.ctx, lo)) == ckpt::k_reason_empty_root);
  lo.ref = "best";
  CHECK(reason_of(ckpt::load(job.ctx, lo)) == ckpt::k_reason_empty_root);
  REQUIRE(job.save(1).ok());
  lo.ref = "99";
  CHECK(reason_of(ckpt::load(job.ctx, lo)) == ckpt::k_reason_no_checkpoint);
  lo.ref = "latest";
  lo.only = {"nothing*"};
  CHECK(reason_of(ckpt::load(job.ctx, lo)) == ckpt::k_reason_no_match);
  lo.only.clear();
  lo.weights_only = true;
  CHECK(reason_of(ckpt::load(job.ctx, lo)) == ckpt::k_reason_no_match);

  auto opts = job.options(2);
  opts.sources = {ckpt::Source{job.work + "/missing.pt", std::nullopt, false}};
  auto r = ckpt::save(job.ctx, opts);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().reason() == ckpt::k_reason_no_source);
}

TEST_CASE("restart: a source written while save reads it is refused, never stored torn") {
  for (auto transfer : {ckpt::Transfer::copy, ckpt::Transfer::move, ckpt::Transfer::link}) {
    CKPT_TEMP_DIR(tmp);
    Job job(tmp);
    REQUIRE(job.save(1).ok());
    WrittenDuringRead fs("model.pt");
    ckpt::Context ctx = job.ctx;
    ctx.fs = &fs;
    job.write_work(2);
    auto r = ckpt::save(ctx, job.options(2, transfer));
    INFO("transfer " << static_cast<int>(transfer));
    CHECK(fs.writes == 1);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().kind() == ckpt::ErrorKind::conflict);
    CHECK(r.error().message().find("changed while it was being saved") != std::string::npos);
    CHECK_FALSE(exists(job.root + "/step-000000002"));
    // Nothing of the user's is lost: the written file is back at its path.
    CHECK(read_text(job.work + "/model.pt") == "weights 2\nappended by another writer\n");
    CHECK(read_text(job.work + "/optim/state.pt") == "optimizer 6\n");
    CHECK(ckpt_test::list_dir(job.root + "/.ckpt/staging").empty());
    // Once the writer is done, the same save goes through.
    auto again = ckpt::save(job.ctx, job.options(2, transfer));
    REQUIRE_MESSAGE(again.ok(), again.error().message());
  }
}

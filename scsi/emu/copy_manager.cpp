#include "scsi/emu/copy_manager.h"

#include <algorithm>

namespace scsi::emu {

namespace {

// One third-party copy descriptor of VPD page 8Fh: TYPE, LENGTH, `body`,
// padded to a multiple of 4 bytes as SPC-4 asks.
void add_descriptor(Bytes& page, std::uint16_t type, Bytes body) {
  while ((4 + body.size()) % 4 != 0) body.push_back(0);
  const std::size_t at = page.size();
  page.resize(at + 4);
  put_be(page, at, 2, type);
  put_be(page, at + 2, 2, body.size());
  page.insert(page.end(), body.begin(), body.end());
}

}  // namespace

CopyManagerUnit::CopyManagerUnit(UnitIdentity identity, xcopy::Resolver resolver,
                                 xcopy::EngineSettings settings)
    : LogicalUnit([&] {
        identity.peripheral_type = 0x03;  // processor
        identity.third_party_copy = true;
        return identity;
      }()),
      engine_(std::make_unique<xcopy::CopyEngine>(std::move(resolver), settings)) {}

CopyManagerUnit::~CopyManagerUnit() = default;

bool CopyManagerUnit::runs_unlocked(std::span<const std::uint8_t> cdb) const {
  return !cdb.empty() && (cdb[0] == xcopy::kExtendedCopy || cdb[0] == xcopy::kReceiveCopyResults);
}

Result CopyManagerUnit::execute_class(std::span<const std::uint8_t> cdb,
                                      std::span<const std::uint8_t> data_out,
                                      std::span<std::uint8_t> data_in) {
  if (cdb[0] == xcopy::kExtendedCopy) return engine_->extended_copy(cdb, data_out);
  if (cdb[0] == xcopy::kReceiveCopyResults) return engine_->receive_copy_results(cdb, data_in);
  return invalid_opcode();
}

Bytes CopyManagerUnit::vpd_page(std::uint8_t page) const {
  if (page != 0x8F) return {};
  const xcopy::OperatingParameters p = engine_->operating_parameters();
  Bytes out;
  // Supported Commands (0001h): EXTENDED COPY(LID1); RECEIVE COPY STATUS,
  // OPERATING PARAMETERS and FAILURE DETAILS.
  const Bytes commands = {
      xcopy::kExtendedCopy, 1, 0x00, xcopy::kReceiveCopyResults, 3, 0x00, 0x03, 0x04};
  Bytes body = {static_cast<std::uint8_t>(commands.size())};
  body.insert(body.end(), commands.begin(), commands.end());
  add_descriptor(out, 0x0001, body);
  // Parameter Data (0004h).
  body.assign(0x1C, 0);
  put_be(body, 4, 2, p.max_targets);
  put_be(body, 6, 2, p.max_segments);
  put_be(body, 8, 4, p.max_descriptor_list_length);
  put_be(body, 12, 4, p.max_inline_data);
  add_descriptor(out, 0x0004, body);
  // Supported Descriptors (0008h).
  body.assign(1, static_cast<std::uint8_t>(p.descriptor_codes.size()));
  body.insert(body.end(), p.descriptor_codes.begin(), p.descriptor_codes.end());
  add_descriptor(out, 0x0008, body);
  // Supported CSCD Descriptor IDs (000Ch): FFFFh, the copy manager itself.
  body = {0x00, 0x02, 0xFF, 0xFF};
  add_descriptor(out, 0x000C, body);
  // General Copy Operations (8001h).
  body.assign(0x20, 0);
  put_be(body, 0, 4, p.total_concurrent_copies);
  put_be(body, 4, 4, p.max_concurrent_copies);
  put_be(body, 8, 4, p.max_segment_length);
  body[12] = p.data_segment_granularity;
  body[13] = p.inline_data_granularity;
  add_descriptor(out, 0x8001, body);
  // Stream Copy Operations (9101h).
  body.assign(0x1C, 0);
  put_be(body, 0, 4, p.max_stream_transfer);
  add_descriptor(out, 0x9101, body);
  // Held Data (C001h).
  body.assign(0x1C, 0);
  put_be(body, 0, 4, p.held_data_limit);
  body[4] = p.held_data_granularity;
  add_descriptor(out, 0xC001, body);
  return out;
}

}  // namespace scsi::emu

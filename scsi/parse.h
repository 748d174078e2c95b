// Data-in parsers: what INQUIRY, VPD pages, REPORT LUNS, MODE SENSE, READ
// CAPACITY, READ POSITION, READ BLOCK LIMITS and READ ELEMENT STATUS return,
// decoded into plain structs.  Pure functions; thread-safe.
//
// Each parser takes the bytes the device actually transferred (Result::
// data_in of them) and returns nullopt when they are too short for the
// fixed part or contradict themselves.  Lengths inside the data (page
// length, mode data length, byte counts) are clamped to what was
// transferred: nothing is read beyond the span, and a list cut short by
// the allocation length (or by a device that miscounts) comes back with
// the entries that arrived whole and `truncated` set.  Each parser names
// the clause it follows by title, because clause numbers move between
// revisions of SPC-4, SBC-3, SSC-4 and SMC-3.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "scsi/device.h"

namespace scsi::parse {

using Span = std::span<const std::uint8_t>;

// ---- INQUIRY (SPC-4 "Standard INQUIRY data") --------------------------------

struct StandardInquiry {
  std::uint8_t peripheral_qualifier = 0;  // byte 0 b7-5
  std::uint8_t peripheral_type = 0x1F;    // byte 0 b4-0: 00 disk, 01 tape, 08 changer
  bool removable = false;                 // RMB, byte 1 b7
  std::uint8_t version = 0;               // byte 2: 05h SPC-3, 06h SPC-4
  std::uint8_t response_data_format = 0;  // byte 3 b3-0 (2)
  bool hisup = false;                     // byte 3 b4
  bool sccs = false;                      // byte 5 b7
  bool third_party_copy = false;          // 3PC, byte 5 b3: EXTENDED COPY supported
  bool protect = false;                   // byte 5 b0
  bool mchngr = false;                    // byte 6 b3
  bool cmdque = false;                    // byte 7 b1
  std::string vendor;                     // T10 VENDOR IDENTIFICATION, bytes 8-15, trimmed
  std::string product;                    // PRODUCT IDENTIFICATION, bytes 16-31, trimmed
  std::string revision;                   // PRODUCT REVISION LEVEL, bytes 32-35, trimmed
};

// Needs bytes 0-7 within the ADDITIONAL LENGTH; the identification strings
// are taken from what is present (empty when the data stops before them).
std::optional<StandardInquiry> standard_inquiry(Span data);

// ---- VPD pages (SPC-4 "Vital product data parameters") --------------------------

// Supported VPD pages (00h): the page codes, in the device's order.
std::optional<std::vector<std::uint8_t>> supported_vpd_pages(Span data);

// Unit Serial Number (80h): PRODUCT SERIAL NUMBER, trimmed of spaces and
// NULs at both ends (tgt pads on the left).
std::optional<std::string> unit_serial_number(Span data);

// Device Identification (83h), SPC-4 "Device Identification VPD page":
// one designation descriptor.
struct Designator {
  std::uint8_t protocol_identifier = 0;  // byte 0 b7-4 (meaningful with PIV)
  std::uint8_t code_set = 0;             // byte 0 b3-0: 1 binary, 2 ASCII, 3 UTF-8
  bool piv = false;                      // byte 1 b7
  std::uint8_t association = 0;          // byte 1 b5-4: 0 LU, 1 target port, 2 target device
  std::uint8_t designator_type = 0;      // byte 1 b3-0: 0 vendor, 1 T10, 2 EUI-64, 3 NAA, ...
  Bytes designator;                      // DESIGNATOR LENGTH (byte 3) bytes from byte 4
};

inline constexpr std::uint8_t kDesignatorVendorSpecific = 0x0;
inline constexpr std::uint8_t kDesignatorT10VendorId = 0x1;
inline constexpr std::uint8_t kDesignatorEui64 = 0x2;
inline constexpr std::uint8_t kDesignatorNaa = 0x3;

struct DeviceIdentification {
  std::vector<Designator> designators;
  bool truncated = false;  // the PAGE LENGTH announced more than arrived whole
};
std::optional<DeviceIdentification> device_identification(Span data);

// The designator that names the logical unit (association 0), preferring
// NAA, then EUI-64, then T10 vendor ID, then vendor specific (the order
// sg_xcopy uses for EXTENDED COPY target descriptors).  Among several NAA
// designators the longest wins: NAA 6 (IEEE Registered Extended, 16 bytes)
// is the only form LIO's copy manager accepts.  Ties: first listed.
std::optional<Designator> preferred_lu_designator(const DeviceIdentification& ids);

// Fills an Identity from standard INQUIRY plus, when the device has them,
// pages 80h and 83h.
Identity identity_from(const StandardInquiry& inquiry, const std::optional<std::string>& serial,
                       const std::optional<DeviceIdentification>& ids);

// Third-party Copy (8Fh), SPC-4 "Third-party Copy VPD page": each
// descriptor's TYPE (bytes 0-1) and its bytes after the 4-byte header
// (DESCRIPTOR LENGTH of them).
struct ThirdPartyCopyDescriptor {
  std::uint16_t type = 0;
  Bytes data;
};
struct ThirdPartyCopy {
  std::vector<ThirdPartyCopyDescriptor> descriptors;
  bool truncated = false;
};
std::optional<ThirdPartyCopy> third_party_copy(Span data);

// B0h for a direct-access device: SBC-3 "Block Limits VPD page".  Fields
// the page is too short to hold stay 0, which the standard reads as "no
// limit reported".
struct BlockLimits {
  bool wsnz = false;                               // byte 4 b0
  std::uint8_t max_compare_and_write_length = 0;   // byte 5
  std::uint16_t optimal_transfer_granularity = 0;  // bytes 6-7, blocks
  std::uint32_t max_transfer_length = 0;           // bytes 8-11, blocks
  std::uint32_t optimal_transfer_length = 0;       // bytes 12-15, blocks
  std::uint32_t max_prefetch_length = 0;           // bytes 16-19
  std::uint32_t max_unmap_lba_count = 0;           // bytes 20-23
  std::uint32_t max_unmap_descriptor_count = 0;    // bytes 24-27
  std::uint32_t optimal_unmap_granularity = 0;     // bytes 28-31
  bool unmap_granularity_alignment_valid = false;  // byte 32 b7
  std::uint32_t unmap_granularity_alignment = 0;   // bytes 32-35, b30-0
  std::uint64_t max_write_same_length = 0;         // bytes 36-43
};
std::optional<BlockLimits> block_limits(Span data);

// B0h for a sequential-access device: SSC-4 "Sequential-access device
// capabilities VPD page".
struct SequentialAccessCapabilities {
  bool worm = false;       // byte 4 b0: the drive can write WORM cartridges
  std::uint8_t flags = 0;  // byte 4 as sent (later SSC revisions add bits)
};
std::optional<SequentialAccessCapabilities> sequential_access_capabilities(Span data);

// B0h means one thing for PDT 00h and another for PDT 01h; nullopt for
// other device types.
using VpdB0 = std::variant<BlockLimits, SequentialAccessCapabilities>;
std::optional<VpdB0> vpd_b0(Span data, std::uint8_t peripheral_type);

// ---- REPORT LUNS (SPC-4 "REPORT LUNS parameter data format") ----------------

struct ReportLuns {
  std::uint32_t list_length = 0;    // LUN LIST LENGTH as reported (bytes)
  std::vector<std::uint64_t> luns;  // each 8-byte LUN, big-endian as a number
  bool truncated = false;
};
std::optional<ReportLuns> report_luns(Span data);

// ---- MODE SENSE (SPC-4 "Mode parameters") ----------------------------------

struct BlockDescriptor {
  std::uint8_t density_code = 0;       // short form byte 0 (0 in the long form)
  std::uint64_t number_of_blocks = 0;  // short: bytes 1-3; long LBA: bytes 0-7
  std::uint32_t block_length = 0;      // short: bytes 5-7; long LBA: bytes 12-15
  // A direct-access device's short LBA descriptor (SBC-3) uses bytes 0-3 as
  // a 32-bit count and has no density code: this is that reading.
  std::uint32_t short_lba_count() const {
    return static_cast<std::uint32_t>(density_code) << 24 |
           static_cast<std::uint32_t>(number_of_blocks);
  }
};

struct ModePage {
  std::uint8_t page_code = 0;  // byte 0 b5-0
  std::uint8_t subpage = 0;    // byte 1 when SPF
  bool ps = false;             // byte 0 b7: savable
  bool spf = false;            // byte 0 b6: sub_page format (4-byte header)
  Bytes bytes;                 // the whole page, header included, so that
                               // offsets match the standard's tables
};

struct ModeParameters {
  std::uint16_t mode_data_length = 0;  // as reported (bytes after the length field)
  std::uint8_t medium_type = 0;
  std::uint8_t device_specific = 0;  // the raw byte; the fields below decode it
  bool write_protected = false;      // WP, b7 (SBC and SSC alike)
  std::uint8_t buffered_mode = 0;    // SSC: b6-4
  std::uint8_t speed = 0;            // SSC: b3-0
  bool long_lba = false;             // (10) only: LONGLBA, byte 4 b0
  std::uint16_t block_descriptor_length = 0;
  std::vector<BlockDescriptor> block_descriptors;
  std::vector<ModePage> pages;
  bool truncated = false;

  // The first page with that code (and subpage), or nullptr.
  const ModePage* find(std::uint8_t page_code, std::uint8_t subpage = 0) const;
};

// MODE SENSE(6) data: 4-byte header, 8-byte block descriptors.
std::optional<ModeParameters> mode_sense6(Span data);
// MODE SENSE(10) data: 8-byte header, 8- or (LONGLBA) 16-byte descriptors.
std::optional<ModeParameters> mode_sense10(Span data);

// SMC-3 "Element address assignment mode page" (1Dh).
struct ElementAddressAssignment {
  std::uint16_t first_transport = 0, transport_count = 0;          // bytes 2-5
  std::uint16_t first_storage = 0, storage_count = 0;              // bytes 6-9
  std::uint16_t first_import_export = 0, import_export_count = 0;  // bytes 10-13
  std::uint16_t first_data_transfer = 0, data_transfer_count = 0;  // bytes 14-17
};
std::optional<ElementAddressAssignment> element_address_assignment(const ModePage& page);

// SMC-3 "Device capabilities mode page" (1Fh).  Element types are indexed
// 0 transport, 1 storage, 2 import/export, 3 data transfer.
struct DeviceCapabilities {
  bool store[4] = {};                  // byte 2: STORMT b0, STORST b1, STORI/E b2, STORDT b3
  std::uint8_t move_from[4] = {};      // bytes 4-7: MT->, ST->, I/E->, DT-> (b0 MT .. b3 DT)
  std::uint8_t exchange_from[4] = {};  // bytes 12-15, same layout
  Bytes bytes;                         // the whole page

  // Whether MOVE MEDIUM from an element of type `from` to one of type `to`
  // is supported (types as ElementType: 1 transport .. 4 data transfer).
  bool can_move(std::uint8_t from, std::uint8_t to) const;
};
std::optional<DeviceCapabilities> device_capabilities(const ModePage& page);

// ---- READ CAPACITY(16) (SBC-3 "READ CAPACITY (16) parameter data") ----------

struct Capacity16 {
  std::uint64_t last_lba = 0;      // RETURNED LOGICAL BLOCK ADDRESS, bytes 0-7
  std::uint32_t block_length = 0;  // bytes 8-11
  // Bytes 12-15: false / 0 when the data stops at 12 bytes.
  bool prot_en = false;                  // byte 12 b0
  std::uint8_t p_type = 0;               // byte 12 b3-1
  std::uint8_t p_i_exponent = 0;         // byte 13 b7-4
  std::uint8_t lbppbe = 0;               // byte 13 b3-0: logical blocks per physical block exponent
  bool lbpme = false;                    // byte 14 b7: thin provisioned
  bool lbprz = false;                    // byte 14 b6: unmapped blocks read as zeros
  std::uint16_t lowest_aligned_lba = 0;  // bytes 14-15, b13-0
};
std::optional<Capacity16> read_capacity16(Span data);

// ---- READ POSITION (SSC-4 "READ POSITION data format") ---------------------

// Short form (service action 00h), 20 bytes.  SSC-2 named LOCU "BCU" and
// LOLU "BPU".
struct PositionShort {
  bool bop = false;   // byte 0 b7
  bool eop = false;   // b6
  bool locu = false;  // b5: logical object count unknown (block count fields invalid)
  bool bycu = false;  // b4: byte count unknown
  bool lolu = false;  // b2: logical object location unknown (locations invalid)
  bool perr = false;  // b1: a location overflowed its 32 bits
  bool bpew = false;  // b0: beyond programmable early warning
  std::uint8_t partition = 0;
  std::uint32_t first_location = 0;    // bytes 4-7
  std::uint32_t last_location = 0;     // bytes 8-11
  std::uint32_t blocks_in_buffer = 0;  // bytes 13-15
  std::uint32_t bytes_in_buffer = 0;   // bytes 16-19
};
std::optional<PositionShort> read_position_short(Span data);

// Long form (06h), 32 bytes.
struct PositionLong {
  bool bop = false;                  // byte 0 b7
  bool eop = false;                  // b6
  bool mpu = false;                  // b3: mark position unknown (file/set ids invalid)
  bool lonu = false;                 // b2: logical object number unknown
  bool bpew = false;                 // b0
  std::uint32_t partition = 0;       // bytes 4-7
  std::uint64_t logical_object = 0;  // bytes 8-15
  std::uint64_t logical_file = 0;    // bytes 16-23: filemarks before the position
  std::uint64_t logical_set = 0;     // bytes 24-31
};
std::optional<PositionLong> read_position_long(Span data);

// Extended form (08h), 32 bytes (ADDITIONAL LENGTH 1Ch at bytes 2-3).
struct PositionExtended {
  bool bop = false, eop = false, locu = false, bycu = false, lolu = false, perr = false,
       bpew = false;                   // byte 0, as in the short form
  std::uint8_t partition = 0;          // byte 1
  std::uint32_t blocks_in_buffer = 0;  // bytes 5-7
  std::uint64_t first_location = 0;    // bytes 8-15
  std::uint64_t last_location = 0;     // bytes 16-23
  std::uint64_t bytes_in_buffer = 0;   // bytes 24-31
};
std::optional<PositionExtended> read_position_extended(Span data);

// ---- READ BLOCK LIMITS (SSC-4 "READ BLOCK LIMITS data") -------------------

struct BlockLimitsSsc {
  std::uint8_t granularity = 0;        // byte 0 b4-0: block lengths are multiples of 2^g
  std::uint32_t max_block_length = 0;  // bytes 1-3 (0: no limit given)
  std::uint16_t min_block_length = 0;  // bytes 4-5
};
std::optional<BlockLimitsSsc> read_block_limits(Span data);

// ---- READ ELEMENT STATUS (SMC-3 "Element status data") ----------------------

struct VolumeTag {
  std::string identifier;      // bytes 0-31, trailing spaces/NULs trimmed
  std::uint16_t sequence = 0;  // bytes 34-35
};

// SMC-3 "Data transfer element descriptor" identification: with DVCID the
// drive's identity (tgt: vendor, product, serial in ASCII); with CURDATA
// the same, from the changer's cache.
struct ElementIdentifier {
  std::uint8_t code_set = 0;         // b3-0
  std::uint8_t identifier_type = 0;  // b3-0
  Bytes identifier;                  // IDENTIFIER LENGTH bytes, or what arrived
};

struct ElementDescriptor {
  std::uint16_t address = 0;  // bytes 0-1
  // Byte 2 flags (which ones are defined depends on the element type).
  bool full = false;               // b0
  bool impexp = false;             // b1 (import/export: placed by the operator)
  bool except = false;             // b2: abnormal state, see asc/ascq
  bool access = false;             // b3: the transport can reach it
  bool exenab = false;             // b4 (import/export)
  bool inenab = false;             // b5 (import/export)
  std::uint8_t asc = 0, ascq = 0;  // bytes 4-5
  // Data transfer elements, bytes 6-7: the drive's SCSI address if valid.
  bool not_bus = false, id_valid = false, lu_valid = false;
  std::uint8_t lun = 0, scsi_bus_address = 0;
  bool svalid = false;                          // byte 9 b7: source_address is valid
  bool invert = false;                          // byte 9 b6
  std::uint8_t medium_type = 0;                 // byte 9 b2-0
  std::uint16_t source_address = 0;             // bytes 10-11
  std::optional<VolumeTag> primary_tag;         // when the page says PVolTag
  std::optional<VolumeTag> alternate_tag;       // when AVolTag
  std::optional<ElementIdentifier> identifier;  // when the descriptor has room for one
  bool truncated = false;  // fewer bytes than ELEMENT DESCRIPTOR LENGTH arrived
};

struct ElementStatusPage {
  std::uint8_t element_type = 0;        // byte 0 b3-0 (1..4)
  bool pvoltag = false;                 // byte 1 b7
  bool avoltag = false;                 // byte 1 b6
  std::uint16_t descriptor_length = 0;  // bytes 2-3
  std::uint32_t byte_count = 0;         // bytes 5-7, as reported
  std::vector<ElementDescriptor> descriptors;
};

struct ElementStatus {
  std::uint16_t first_address = 0;       // header bytes 0-1
  std::uint16_t elements_available = 0;  // bytes 2-3
  std::uint32_t byte_count = 0;          // bytes 5-7, as reported
  std::vector<ElementStatusPage> pages;
  bool truncated = false;  // something announced did not arrive whole
};

// nullopt for a header shorter than 8 bytes, a page whose element type is
// not 1-4, or a descriptor length below the 12 fixed bytes (tgt's garbled
// all-types report trips the first: ask for one element type at a time).
std::optional<ElementStatus> read_element_status(Span data);

}  // namespace scsi::parse

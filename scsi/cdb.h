// CDB builders: the command descriptor blocks ndmpd sends, each field
// placed where the standard puts it (multi-byte fields big-endian, CONTROL
// byte 0).  Pure functions; thread-safe.
//
// Arguments are typed to their field's width where C++ has such a type.
// Where it has not (24-bit lengths, bit fields, signed 24-bit counts) an
// argument that does not fit makes the builder return an EMPTY Bytes, never
// a silently truncated CDB: callers check `.empty()`.  Each builder names
// the clause of the standard it follows by title (SPC-4, SBC-3, SSC-4,
// SMC-3 "<NAME> command"), because clause numbers move between revisions.
#pragma once

#include <cstdint>

#include "scsi/device.h"

namespace scsi::cdb {

// ---- SPC-4 ---------------------------------------------------------------

// SPC-4 INQUIRY command (12h); ALLOCATION LENGTH is 16 bits since SPC-3.
// Empty if !evpd and page != 0 (the standard forbids a page code then).
Bytes inquiry(bool evpd, std::uint8_t page, std::uint16_t alloc);

// SPC-4 TEST UNIT READY command (00h).
Bytes test_unit_ready();

// SPC-4 REQUEST SENSE command (03h); DESC asks for descriptor-format sense.
Bytes request_sense(std::uint8_t alloc, bool descriptor_format);

// SPC-4 REPORT LUNS command (A0h).
Bytes report_luns(std::uint8_t select_report, std::uint32_t alloc);

// SPC-4 MODE SENSE(6) command (1Ah).  page_control (PC): 0 current,
// 1 changeable, 2 default, 3 saved.  Empty if page_control > 3 or
// page > 3Fh.
Bytes mode_sense6(bool dbd, std::uint8_t page_control, std::uint8_t page, std::uint8_t subpage,
                  std::uint8_t alloc);

// SPC-4 MODE SENSE(10) command (5Ah); LLBAA permits long LBA block
// descriptors.  Empty if page_control > 3 or page > 3Fh.
Bytes mode_sense10(bool llbaa, bool dbd, std::uint8_t page_control, std::uint8_t page,
                   std::uint8_t subpage, std::uint16_t alloc);

// SPC-4 MODE SELECT(6) command (15h); `length` is the PARAMETER LIST LENGTH.
Bytes mode_select6(bool pf, bool sp, std::uint8_t length);

// SPC-4 MODE SELECT(10) command (55h).
Bytes mode_select10(bool pf, bool sp, std::uint16_t length);

// SPC-4 PREVENT ALLOW MEDIUM REMOVAL command (1Eh), also SMC-3's: PREVENT
// field 00b (allow) or 01b (prevent).
Bytes prevent_allow_medium_removal(bool prevent);

// SPC-4 LOG SENSE command (4Dh): SP byte 1 b0, PC byte 2 b7-6 (1: current
// cumulative values), PAGE CODE byte 2 b5-0, SUBPAGE byte 3, PARAMETER
// POINTER 5-6, ALLOCATION LENGTH 7-8.  Empty if pc > 3 or page > 3Fh.
Bytes log_sense(std::uint8_t pc, std::uint8_t page, std::uint8_t subpage, std::uint16_t pointer,
                std::uint16_t alloc);

// ---- SBC-3 ---------------------------------------------------------------

// SBC-3 READ CAPACITY(16) command (9Eh, service action 10h).
Bytes read_capacity16(std::uint32_t alloc);

// SBC-3 READ(16) (88h) and WRITE(16) (8Ah) commands: `blocks` is the
// TRANSFER LENGTH in logical blocks; RDPROTECT/WRPROTECT, DPO and the group
// number are 0.
Bytes read16(std::uint64_t lba, std::uint32_t blocks, bool fua);
Bytes write16(std::uint64_t lba, std::uint32_t blocks, bool fua);

// SBC-3 SYNCHRONIZE CACHE(10) (35h) and SYNCHRONIZE CACHE(16) (91h)
// commands; blocks 0 means "through the last logical block".
Bytes synchronize_cache10(std::uint32_t lba, std::uint16_t blocks, bool immed);
Bytes synchronize_cache16(std::uint64_t lba, std::uint32_t blocks, bool immed);

// ---- SSC-4 ---------------------------------------------------------------

inline constexpr std::uint32_t kMax24 = 0xFFFFFF;

// SSC-4 READ(6) command (08h): `length` counts blocks (fixed) or bytes
// (variable).  Empty if length > 24 bits, or if both fixed and sili are
// set (the standard makes that an ILLEGAL REQUEST).
Bytes read6(bool fixed, bool sili, std::uint32_t length);

// SSC-4 WRITE(6) command (0Ah).  Empty if length > 24 bits.
Bytes write6(bool fixed, std::uint32_t length);

// SSC-4 WRITE FILEMARKS(6) command (10h); count 0 only flushes the
// buffer.  Empty if count > 24 bits.
Bytes write_filemarks6(std::uint32_t count, bool immed);

// The CODE field of SPACE(6) and SPACE(16).
enum class SpaceCode : std::uint8_t {
  kBlocks = 0x0,
  kFilemarks = 0x1,
  kSequentialFilemarks = 0x2,
  kEndOfData = 0x3,
};

// SSC-4 SPACE(6) command (11h); negative counts move towards BOP.  Empty if
// count does not fit a signed 24-bit field (-8388608 .. 8388607).
Bytes space6(SpaceCode code, std::int32_t count);

// SSC-4 SPACE(16) command (91h): signed 64-bit COUNT at bytes 4-11,
// PARAMETER LENGTH at 12-13 (0: no parameter data).
Bytes space16(SpaceCode code, std::int64_t count, std::uint16_t parameter_length = 0);

// SSC-4 LOCATE(10) command (2Bh): BT (the address is a device-specific
// block number), CP (change to `partition` first), IMMED.
Bytes locate10(std::uint32_t block, bool bt, bool cp, std::uint8_t partition, bool immed = false);

// SSC-4 LOCATE(16) command (92h): DEST_TYPE in byte 1 bits 5-3 (0 logical
// object identifier, 1 logical file identifier), CP, IMMED, PARTITION,
// LOGICAL IDENTIFIER.  Empty if dest_type > 7.
Bytes locate16(std::uint64_t object, std::uint8_t dest_type, bool cp, std::uint8_t partition,
               bool immed = false);

// The SERVICE ACTION of READ POSITION: which data format comes back.
enum class ReadPositionForm : std::uint8_t {
  kShort = 0x00,     // 20 bytes, 32-bit block locations
  kLong = 0x06,      // 32 bytes, 64-bit object number, file and set ids
  kExtended = 0x08,  // 32 bytes, 64-bit locations and buffer counts
};

// SSC-4 READ POSITION command (34h).  The standard wants ALLOCATION LENGTH
// zero for the short and long forms (drives such as HP's LTO reject
// anything else): empty if alloc != 0 there.
Bytes read_position(ReadPositionForm form, std::uint16_t alloc = 0);

// SSC-4 REWIND command (01h).
Bytes rewind(bool immed);

// SSC-4 LOAD UNLOAD command (1Bh): byte 4 HOLD b3, EOT b2, RETEN b1, LOAD b0.
Bytes load_unload(bool load, bool hold, bool eot, bool retension, bool immed);

// SSC-4 READ BLOCK LIMITS command (05h), MLOI 0 (the 6-byte data).
Bytes read_block_limits();

// SSC-4 ERASE(6) command (19h): LONG b0, IMMED b1.
Bytes erase6(bool long_erase, bool immed);

// ---- SMC-3 ---------------------------------------------------------------

// The ELEMENT TYPE CODE of READ ELEMENT STATUS and of element status pages.
enum class ElementType : std::uint8_t {
  kAll = 0x0,
  kMediumTransport = 0x1,
  kStorage = 0x2,
  kImportExport = 0x3,
  kDataTransfer = 0x4,
};

// SMC-3 READ ELEMENT STATUS command (B8h): VOLTAG byte 1 b4, ELEMENT TYPE
// CODE b3-0, STARTING ELEMENT ADDRESS 2-3, NUMBER OF ELEMENTS 4-5, CURDATA
// byte 6 b1, DVCID b0, ALLOCATION LENGTH 7-9.  Empty if alloc > 24 bits.
Bytes read_element_status(bool voltag, ElementType element_type, std::uint16_t start,
                          std::uint16_t count, bool dvcid, bool curdata, std::uint32_t alloc);

// SMC-3 MOVE MEDIUM command (A5h).
Bytes move_medium(std::uint16_t transport, std::uint16_t source, std::uint16_t destination,
                  bool invert);

// SMC-3 EXCHANGE MEDIUM command (A6h): source -> dest1, and what dest1
// held -> dest2.
Bytes exchange_medium(std::uint16_t transport, std::uint16_t source, std::uint16_t dest1,
                      std::uint16_t dest2, bool inv1, bool inv2);

// SMC-3 INITIALIZE ELEMENT STATUS command (07h).
Bytes initialize_element_status();

// SMC-3 INITIALIZE ELEMENT STATUS WITH RANGE command (37h) with RANGE=1;
// count 0 means from `start` through the last element.
Bytes initialize_element_status_with_range(std::uint16_t start, std::uint16_t count);

// SMC-3 POSITION TO ELEMENT command (2Bh).
Bytes position_to_element(std::uint16_t transport, std::uint16_t destination, bool invert);

}  // namespace scsi::cdb

// SPDX-License-Identifier: Apache-2.0
// Reading the XML documents an S3 store answers with: flat, machine-written
// elements (ListBucketResult, Error, InitiateMultipartUploadResult, ...).
// Not a general XML parser: no DTD, no CDATA, no namespaces beyond ignoring
// an element's attributes.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ckpt::s3 {

// The raw content of each <tag>...</tag> directly or deeply inside doc, in
// order; an element <tag/> gives an empty content. Elements of the same name
// nested in one another are not supported (S3 documents have none).
std::vector<std::string_view> xml_elements(std::string_view doc, std::string_view tag);

// The text of the first <tag> in doc, entities decoded; nullopt when absent.
std::optional<std::string> xml_text(std::string_view doc, std::string_view tag);

// Decodes &amp; &lt; &gt; &quot; &apos; and numeric references (UTF-8).
std::string xml_unescape(std::string_view text);
// Escapes & < > " ' for element text.
std::string xml_escape(std::string_view text);

}  // namespace ckpt::s3

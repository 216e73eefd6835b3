/* upload_types.h - file type lists of the upload policies, and file names.
 *
 * A type list is separated by commas or blanks; each entry is a file name extension
 * ("exe", ".exe"), a media type ("application/pdf") or a media type family ("image/"
 * followed by a star).
 * An extension also stands for the media types such files have (exe:
 * application/x-dosexec, ...), so that a list naming "exe" matches an executable's
 * content whatever it is called. */
#ifndef PARLEY_UPLOAD_TYPES_H
#define PARLEY_UPLOAD_TYPES_H

#include <stddef.h>

/* Does list name this file, by its name's extension or by its media type (either may be
 * NULL)? The matching entry is copied to hit (may be NULL). */
int types_match(const char *list, const char *name, const char *media_type, char *hit,
                size_t hitlen);

/* Is ext (an entry of a list, "pdf" or ".pdf") an extension whose content type is
 * known, so that content can be checked against it? */
int types_ext_known(const char *ext);

/* A file name safe to store, show and send back in Content-Disposition: the last path
 * component only (no '/' or '\\'), no control characters, quotes, ';' or leading dots,
 * valid UTF-8, at most 200 bytes; "file" if nothing is left. Freshly allocated. */
char *types_sanitize_name(const char *name);

/* Is s a plausible media type ("type/subtype", token characters only)? */
int types_valid_media_type(const char *s);

#endif

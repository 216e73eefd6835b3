/* version.h - the one place the release version is written. */
#ifndef PARLEY_VERSION_H
#define PARLEY_VERSION_H
#define PARLEY_NAME "Parley"
#define PARLEY_VERSION "0.1.0"
#endif

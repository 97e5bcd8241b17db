/* version.h - the release version, printed by --version and in /metrics. */
#ifndef CE_VERSION_H
#define CE_VERSION_H
#define CE_VERSION "0.1.0"
#endif

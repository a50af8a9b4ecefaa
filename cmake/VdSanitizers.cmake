# VD_SANITIZE=ON builds everything with AddressSanitizer and UndefinedBehaviorSanitizer.
if(VD_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -g)
  add_link_options(-fsanitize=address,undefined)
endif()
